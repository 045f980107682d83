"""The `rag-ingest` command: `rag-ingest dev` (what `make dev` runs)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: rag-ingest dev [--exit-when-ingested] [--timeout SECONDS]")
        return 0 if args else 2
    if args[0] == "dev":
        from rag_ingest.devserver import main as dev_main

        return dev_main(args[1:])
    print(f"rag-ingest: unknown command {args[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
