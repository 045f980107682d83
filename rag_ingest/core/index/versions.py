"""Index versions: one physical collection per pipeline fingerprint, behind the readers' alias.

The pipeline writes into the collection of the current fingerprint. Readers query the alias,
which points at exactly one collection, so they never see two vector spaces mixed. A new
fingerprint's collection is filled in the background by ordinary reconciles; once every watched
document is ingested or recorded with a reason there and its points match the registry, the
alias moves to it in one atomic operation. The previous collection stays for rollback.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag_ingest.core.index.fingerprint import Fingerprint, physical_collection
from rag_ingest.core.registry import Registry, Scope, Target
from rag_ingest.core.vectorstore.base import CollectionMismatch, VectorStore, holds_version

EXAMPLES = 20


@dataclass(frozen=True)
class VersionState:
    target: Target
    live: bool
    points: int
    documents_done: int
    documents_waiting: int


@dataclass(frozen=True)
class Verification:
    ok: bool
    documents_checked: int
    mismatched: list[str]
    orphans: list[str]

    def summary(self) -> str:
        if self.ok:
            return f"{self.documents_checked} documents match their points"
        return (
            f"{len(self.mismatched)} document(s) with other point counts or versions "
            f"(e.g. {', '.join(self.mismatched[:3])}), {len(self.orphans)} orphan document(s)"
        )


def ensure_target(
    store: VectorStore,
    registry: Registry,
    alias: str,
    fingerprint: Fingerprint,
) -> Target:
    """The target the pipeline writes now: the fingerprint's collection, created if missing.

    A collection created here (first write, or deleted by hand since) is a new target, so no
    document counts as ingested there. With no alias yet (the first version ever) the alias
    points at it at once: there is nothing older to keep serving.

    Raises:
        CollectionMismatch: the collection has other vectors, or a real collection holds the
            alias's name.
    """
    physical = physical_collection(alias, fingerprint)
    created = store.ensure_collection(physical, fingerprint.dimension, fingerprint.sparse_vector)
    target = registry.target(store.location, physical)
    if created or target is None:
        target = registry.new_target(
            store.location, physical, alias, fingerprint.digest, fingerprint.as_json()
        )
    if alias not in store.aliases():
        if store.collection_exists(alias):
            raise CollectionMismatch(
                f"a collection named {alias!r} exists at {store.location}; rag-ingest serves "
                f"{alias!r} as an alias of versioned collections ({physical}). Rename or drop "
                "it, or choose another RAG_QDRANT_COLLECTION"
            )
        store.set_alias(alias, physical)
        registry.set_target_state(target.id, "live", promoted=True)
        target = registry.target_by_id(target.id) or target
    return target


def verify(store: VectorStore, registry: Registry, target: Target, scope: Scope) -> Verification:
    """Every document ingested into ``target`` holds exactly its chunks' points, all of the
    version (ETag) the registry records as ingested, and no point belongs to a document the
    registry does not hold live."""
    expected = registry.ingested_versions(target.id, scope=scope)
    actual = store.versions_per_document(target.collection)
    live = registry.live_doc_ids(scope)
    mismatched = sorted(
        d for d, (etag, n) in expected.items() if not holds_version(actual.get(d), etag, n)
    )
    orphans = sorted(d for d in actual if d not in live)
    return Verification(not mismatched and not orphans, len(expected), mismatched, orphans)


def promote(store: VectorStore, registry: Registry, target: Target) -> Target | None:
    """Point the alias at ``target``'s collection; returns the target it served before."""
    previous_collection = store.resolve(target.alias)
    previous = registry.target(store.location, previous_collection) if previous_collection else None
    store.set_alias(target.alias, target.collection)
    registry.set_target_state(target.id, "live", promoted=True)
    if previous is not None and previous.id != target.id:
        registry.set_target_state(previous.id, "retired")
    return previous


def maybe_promote(
    store: VectorStore, registry: Registry, target: Target, scope: Scope
) -> tuple[bool, str]:
    """Promote ``target`` if it is complete and verified; (promoted, why or why not)."""
    if target.state == "live" and store.resolve(target.alias) == target.collection:
        return False, "already live"
    if target.state == "rolled_back":
        return False, "rolled back by an operator: promote it explicitly to serve it again"
    waiting = registry.work_count(scope, target.id)
    if waiting:
        return False, f"{waiting} document(s) still to reconcile into {target.collection}"
    check = verify(store, registry, target, scope)
    if not check.ok:
        return False, f"not promoted: {check.summary()}"
    promote(store, registry, target)
    return True, f"promoted {target.collection}: {check.summary()}"


def rollback(store: VectorStore, registry: Registry, alias: str) -> Target:
    """Serve the previously live version again; the current one is pinned as rolled back."""
    current = store.resolve(alias)
    history = [
        t
        for t in registry.targets(store.location, alias)
        if t.promoted_at
        and t.collection != current
        and t.state in ("retired", "live")
        and store.collection_exists(t.collection)
    ]
    if not history:
        raise ValueError(f"no earlier version of {alias!r} to roll back to")
    previous = max(history, key=lambda t: t.promoted_at or 0.0)
    now_live = registry.target(store.location, current) if current else None
    store.set_alias(alias, previous.collection)
    registry.set_target_state(previous.id, "live", promoted=True)
    if now_live is not None:
        registry.set_target_state(now_live.id, "rolled_back")
    return previous


def drop(store: VectorStore, registry: Registry, target: Target) -> None:
    """Delete a version's collection; the live one cannot be dropped."""
    if store.resolve(target.alias) == target.collection:
        raise ValueError(f"{target.collection} is live; promote or roll back first")
    store.drop_collection(target.collection)
    registry.set_target_state(target.id, "dropped")


def versions(
    store: VectorStore, registry: Registry, alias: str, scope: Scope
) -> list[VersionState]:
    live = store.resolve(alias)
    states = []
    for target in registry.targets(store.location, alias):
        if target.state == "dropped":
            continue
        exists = store.collection_exists(target.collection)
        states.append(
            VersionState(
                target=target,
                live=target.collection == live,
                points=store.count(target.collection) if exists else 0,
                documents_done=len(registry.ingested_chunks(target.id, scope=scope)),
                documents_waiting=registry.work_count(scope, target.id),
            )
        )
    return states
