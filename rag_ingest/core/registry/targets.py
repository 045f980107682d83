"""Targets and run requests: the collections the pipeline writes, and what sensors asked for.

Targets: one physical collection per location and fingerprint.

A document counts as ingested only in the target it was written to. When the pipeline creates
a collection (first write, or after it was deleted by hand) it registers a new target, so every
document counts as not ingested there and the next reconcile fills it.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from rag_ingest.core.registry.model import ShardRequest, Target
from rag_ingest.core.registry.schema import counters, shard_requests, targets

# Targets whose collection may still hold points (dropped ones are gone).
_EXISTING = ("building", "live", "retired", "rolled_back")


def _target(row: sa.Row[tuple[object, ...]]) -> Target:
    return Target(**row._mapping)  # type: ignore[arg-type]


class TargetsMixin:
    engine: sa.Engine

    def target(self, location: str, collection: str) -> Target | None:
        """The latest target registered for a collection at a location (None: never written)."""
        stmt = (
            sa.select(targets)
            .where(
                targets.c.location == location,
                targets.c.collection == collection,
                targets.c.state.in_(_EXISTING),
            )
            .order_by(targets.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _target(row) if row is not None else None

    def target_by_id(self, target_id: int) -> Target | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(targets).where(targets.c.id == target_id)).first()
        return _target(row) if row is not None else None

    def new_target(
        self, location: str, collection: str, alias: str, fingerprint: str, spec: str
    ) -> Target:
        """Register a (re)created collection; earlier targets of the same collection end.

        A collection rolled back by an operator stays rolled back when it is created again
        (dropped, or lost, while the settings still name it): the new target inherits the
        pin, and only an explicit promotion (or other settings) ends it.
        """
        now = time.time()
        with self.engine.begin() as conn:
            last = conn.execute(
                sa.select(targets.c.rolled_back_at)
                .where(targets.c.location == location, targets.c.collection == collection)
                .order_by(targets.c.id.desc())
                .limit(1)
            ).first()
            pinned = last.rolled_back_at if last is not None else None
            conn.execute(
                targets.update()
                .where(
                    targets.c.location == location,
                    targets.c.collection == collection,
                    targets.c.state.in_(_EXISTING),
                )
                .values(state="dropped")
            )
            result = conn.execute(
                targets.insert().values(
                    location=location,
                    collection=collection,
                    alias=alias,
                    fingerprint=fingerprint,
                    spec=spec,
                    state="building" if pinned is None else "rolled_back",
                    created_at=now,
                    promoted_at=None,
                    rolled_back_at=pinned,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            target_id = int(key[0])
        found = self.target_by_id(target_id)
        assert found is not None
        return found

    def targets(self, location: str, alias: str | None = None) -> list[Target]:
        stmt = sa.select(targets).where(targets.c.location == location)
        if alias is not None:
            stmt = stmt.where(targets.c.alias == alias)
        with self.engine.connect() as conn:
            return [_target(r) for r in conn.execute(stmt.order_by(targets.c.id))]

    def set_target_state(self, target_id: int, state: str, promoted: bool = False) -> None:
        """``rolled_back`` pins the collection (see :meth:`new_target`); ``live`` unpins it."""
        values: dict[str, object] = {"state": state}
        if promoted:
            values["promoted_at"] = time.time()
        if state == "rolled_back":
            values["rolled_back_at"] = time.time()
        elif state == "live":
            values["rolled_back_at"] = None
        with self.engine.begin() as conn:
            conn.execute(targets.update().where(targets.c.id == target_id).values(values))

    # --- run requests (shared by every sensor of the deployment) ---------------------------

    def shard_requests(self, shards: int) -> dict[int, ShardRequest]:
        stmt = sa.select(shard_requests).where(shard_requests.c.shards == shards)
        with self.engine.connect() as conn:
            return {
                int(r.shard): ShardRequest(r.signature, int(r.attempts), float(r.requested_at))
                for r in conn.execute(stmt)
            }

    def save_shard_requests(self, shards: int, requests: dict[int, ShardRequest]) -> None:
        if not requests:
            return
        with self.engine.begin() as conn:
            conn.execute(
                shard_requests.delete().where(
                    shard_requests.c.shards == shards,
                    shard_requests.c.shard.in_(list(requests)),
                )
            )
            conn.execute(
                shard_requests.insert(),
                [
                    {
                        "shards": shards,
                        "shard": index,
                        "signature": r.signature,
                        "attempts": r.attempts,
                        "requested_at": r.requested_at,
                    }
                    for index, r in requests.items()
                ],
            )

    def counter(self, name: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(counters.c.value).where(counters.c.name == name)
            ).scalar_one_or_none()
        return int(value or 0)

    def set_counter(self, name: str, value: int) -> None:
        with self.engine.begin() as conn:
            updated = conn.execute(
                counters.update().where(counters.c.name == name).values(value=value)
            ).rowcount
            if not updated:
                conn.execute(counters.insert().values(name=name, value=value))
