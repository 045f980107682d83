# `make dev`: set up and run the pipeline locally. `make test`: set up and run the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup dev test lint corpus bench clean

setup: $(STAMP)

# torch first and pinned: an open torch requirement pulls a multi-GB CUDA build. The CPU-only
# wheel comes from PyTorch's CPU index; where that index cannot be reached (a mirror of PyPI
# only), PyPI's torch==2.13.0 is installed instead (on Linux x86-64 that wheel is the CUDA
# build: the same code, gigabytes more).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --retries 1 --index-url $(TORCH_INDEX) torch==2.13.0 \
		|| $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The BM25 equality test's reference; its huggingface-hub<2 pin is not needed by Bm25.
	$(BIN)/python -m pip install --quiet --no-deps fastembed==0.9.1
	touch $(STAMP)

dev: setup
	$(BIN)/python -m rag_ingest.cli dev

test: setup
	$(BIN)/python -m pytest -q -ra

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	$(BIN)/dg check defs
	$(BIN)/python scripts/check_imports.py

# Side-by-side benchmark (about an hour at these sizes on 2 cores; bench/RESULTS.md).
bench: setup
	$(BIN)/python -m bench.run --docs 20000 --burst-keys 100000 --cpu-docs 200 --out bench/results/latest.md

corpus: setup
	$(BIN)/python scripts/make_sample_corpus.py

# Local state only: the registry, run files, the embedded Qdrant and the dev instance's history.
# documents/ (your files) is kept.
clean:
	rm -rf data dagster_home/storage dagster_home/history dagster_home/logs dagster_home/schedules
