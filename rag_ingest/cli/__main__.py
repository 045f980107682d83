"""``python -m rag_ingest.cli``: the `rag-ingest` command without its console script (what
`make dev` runs, so it works before the package's scripts are installed)."""

import sys

from rag_ingest.cli import main

sys.exit(main())
