"""`rag-ingest index list | promote | rollback | drop`: index versions behind the alias.

Each pipeline fingerprint writes its own physical collection; readers query the alias. These
commands show the versions and move the alias by hand (the pipeline promotes a complete,
verified version by itself unless ``RAG_AUTO_PROMOTE=false``).
"""

from __future__ import annotations

import argparse
from typing import Any

from rag_ingest.cli.resources import resources, when
from rag_ingest.core.config import Settings
from rag_ingest.core.index.fingerprint import Fingerprint


def index(args: argparse.Namespace) -> int:
    try:
        return _index(args)
    except ValueError as exc:  # refused operations (drop the live version, nothing to roll back)
        print(str(exc))
        return 1


def _index(args: argparse.Namespace) -> int:
    from rag_ingest.core.index import versions

    settings: Settings = args.settings
    with resources(settings, "vectors", "registry") as res, res.vectors.open() as store:
        reg = res.registry.registry
        alias = settings.collection
        if args.action == "list":
            if not settings.bucket_configured:
                # The done/waiting counts are per watched bucket: without one they read 0.
                print(
                    "RAG_S3_BUCKET is not set (and no `make dev` runs in this folder): the "
                    "counts below cover no bucket"
                )
            states = versions.versions(store, reg, alias, settings.scope)
            current = settings.physical_collection
            print(f"alias {alias!r} at {store.location} → {store.resolve(alias) or '(none)'}")
            for s in states:
                marks = ("live " if s.live else "") + (
                    "current" if s.target.collection == current else ""
                )
                spec = Fingerprint.from_json(s.target.spec).describe()
                print(
                    f"{'*' if s.live else ' '} {s.target.collection:<32} {s.target.state:<11} "
                    f"{s.points:>9,} points  {s.documents_done:>8,} done  "
                    f"{s.documents_waiting:>8,} waiting  created {when(s.target.created_at)}  "
                    f"{marks.strip()}\n    {spec}"
                )
            return 0
        if args.action == "rollback":
            previous = versions.rollback(store, reg, alias)
            print(f"alias {alias!r} → {previous.collection} (rolled back)")
            return 0
        name = args.collection or settings.physical_collection
        target = reg.target(store.location, name)
        if target is None:
            print(f"no version {name!r} recorded at {store.location}")
            return 1
        if args.action == "drop":
            versions.drop(store, reg, target)
            print(f"dropped {name}")
            return 0
        if not args.force:
            waiting = reg.work_count(settings.scope, target.id)
            check = versions.verify(store, reg, target, settings.scope)
            if waiting or not check.ok:
                print(
                    f"not promoting {name}: {waiting} document(s) waiting; {check.summary()} "
                    "(--force promotes anyway)"
                )
                return 1
        previous = versions.promote(store, reg, target)
        print(f"alias {alias!r} → {name}" + (f" (was {previous.collection})" if previous else ""))
    return 0


def add_index_parser(sub: Any) -> None:
    p = sub.add_parser(
        "index", help="index versions behind the alias: list, promote, rollback, drop"
    )
    p.add_argument("action", choices=["list", "promote", "rollback", "drop"])
    p.add_argument(
        "collection", nargs="?", help="physical collection (default: the current fingerprint's)"
    )
    p.add_argument("--force", action="store_true", help="promote even if incomplete")
    p.set_defaults(func=index)
