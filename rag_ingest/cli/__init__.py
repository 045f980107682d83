"""The `rag-ingest` command: `dev` (what `make dev` runs), `status`, `search`, `health`,
`cost`, `confirm-deletes`, `index`.

This module only dispatches; each command lives with its kind (``documents``, ``index``,
``dev``) and none of them imports another, so the package has no import cycle.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "dev":
        # Its own parser: `dev` takes flags the operator commands do not, and imports no model.
        from rag_ingest.cli.dev import main as dev_main

        return dev_main(args[1:])
    from rag_ingest.cli.documents import add_parsers
    from rag_ingest.cli.index import add_index_parser

    parser = argparse.ArgumentParser(prog="rag-ingest")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="local S3 with the sample corpus + Dagster UI and daemon")
    add_parsers(sub)
    add_index_parser(sub)
    parsed = parser.parse_args(args)
    # Read once per command, like a code location reads them once per process.
    from rag_ingest.core.config import Settings

    parsed.settings = Settings.from_env()
    return int(parsed.func(parsed))


if __name__ == "__main__":
    sys.exit(main())
