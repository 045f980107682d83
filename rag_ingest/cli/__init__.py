"""The `rag-ingest` command: `dev` (what `make dev` runs), `status`, `search`, `health`,
`cost`, `confirm-deletes`, `index`.

This module only dispatches; each command lives with its kind (``documents``, ``index``,
``dev``) and none of them imports another, so the package has no import cycle.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


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
    # Model-loading progress bars: noise for a command's one answer.
    for name, value in (
        ("TQDM_DISABLE", "1"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
    ):
        os.environ.setdefault(name, value)
    from rag_ingest.cli.devstate import apply_state
    from rag_ingest.cli.errors import explain
    from rag_ingest.core.config import Settings
    from rag_ingest.testing import REPO

    # In the project folder while `make dev` runs: its local S3, bucket and instance, for
    # whatever the environment does not set.
    apply_state([Path.cwd() / "data", REPO / "data"])
    try:
        # Read once per command, like a code location reads them once per process.
        parsed.settings = Settings.from_env()
        return int(parsed.func(parsed))
    except Exception as exc:
        if os.environ.get("RAG_DEBUG"):
            raise
        print(f"rag-ingest {parsed.command}: {explain(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
