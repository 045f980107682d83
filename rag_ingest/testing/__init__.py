"""Local stand-ins for the services the pipeline talks to (moto's S3, a throwaway PostgreSQL,
headless Chromium and a webserver, free ports) and a harness that drives the project's
definitions against them.

The tests, the benchmark and `make dev` all need them; living in the package (not in the test
package) lets ``bench`` and the CLI import them without importing the tests. Nothing below
``cli`` imports this package (``scripts/check_imports.py``), so the pipeline never depends on it;
the dev-only libraries it uses (moto, selenium, pytest) are imported where they are needed.
"""

from pathlib import Path

# A checkout's root: the sample corpus, workspace.yaml and dagster_home/ live there.
REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE_CORPUS = REPO / "sample_corpus"
