"""One command for the side-by-side benchmark; writes a markdown report.

    .venv/bin/python -m bench.run [--docs 2000] [--repeats 3] [--seed-subset 20]
        [--sensor-keys 100000] [--skip llamaindex,seed,sensor] [--profile] [--out bench/RESULTS.md]

Everything runs on this machine against one moto S3 server (127.0.0.1, free port), the same
seeded corpus and the packaged all-MiniLM-L6-v2; each scenario gets fresh temp dirs (Dagster
instance, registry, Parquet store, embedded Qdrant). Medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import common
from .common import REPO, Stopwatch, median, moto_server, s3_client
from .corpus import make_corpus, make_document, upload

BUCKET = "bench-corpus"
SCENARIOS = ("llamaindex", "seed", "floor", "sensor")
CHANGED_SHARE = 0.01


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--docs", type=int, default=2000, help="documents in the corpus")
    p.add_argument("--repeats", type=int, default=3, help="repeats per scenario (medians)")
    p.add_argument("--seed-subset", type=int, default=20, help="documents the seed approach runs")
    p.add_argument("--sensor-keys", type=int, default=100_000, help="keys for the sensor scenario")
    p.add_argument("--sensor-submit-runs", type=int, default=5, help="runs really submitted")
    p.add_argument("--seed", type=int, default=7, help="corpus seed")
    p.add_argument(
        "--partitions-per-run", type=int, default=200, help="documents per ingest run (sensor)"
    )
    p.add_argument(
        "--metadata-registered",
        type=int,
        default=20_000,
        help="partitions on the instance for the per-partition metadata before/after",
    )
    p.add_argument("--skip", default="", help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    p.add_argument("--profile", action="store_true", help="profile one extra cold ingest")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = p.parse_args(argv)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if unknown := args.skip - set(SCENARIOS):
        p.error(f"unknown --skip {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    return args


def _io_split(client: Any, keys: list[str]) -> dict[str, float]:
    """S3 fetch and parsing timed apart on the same objects (raw_documents does both at once)."""
    from rag_ingest.core import s3
    from rag_ingest.core.extract import extract

    def get(key: str) -> s3.FetchedObject:
        return s3.fetch(client, BUCKET, key, 64 * 1024 * 1024)

    with Stopwatch() as fetching, ThreadPoolExecutor(max_workers=8) as pool:
        fetched = list(pool.map(get, keys))  # 8 threads, as S3Source.fetch_threads
    with Stopwatch() as parsing:
        for f in fetched:
            extract(f.obj.key, f.body, f.content_type, f.content_encoding)
    return {"s3_fetch_8_threads": fetching.seconds, "parse_1_thread": parsing.seconds}


def _pipeline(args: argparse.Namespace, endpoint: str, client: Any, tmp: Path) -> dict[str, Any]:
    from rag_ingest.core.encoder import shared_encoder

    from .pipeline import pipeline_env

    # The model loads once per process; in production once per run process. Kept out of both
    # the pipeline's and the floor's timings and reported on its own line.
    with Stopwatch() as loading:
        encoder = shared_encoder("cpu", 64, "torch")
        encoder.encode(["warm-up"])
    n_changed = max(1, round(args.docs * CHANGED_SHARE))
    changed = sorted(random.Random(args.seed).sample(range(args.docs), n_changed))
    rows: dict[str, list[float]] = defaultdict(list)
    last: Any = None
    for r in range(args.repeats):
        with pipeline_env(endpoint, BUCKET, tmp / f"pipeline-{r}", args.partitions_per_run) as env:
            cold = env.sync()
            texts = env.chunk_texts()
            with Stopwatch() as floor:
                encoder.encode(texts)
            unchanged = env.sync()
            upload(client, BUCKET, [make_document(args.seed, i, version=1) for i in changed])
            after_change = env.sync()
            upload(client, BUCKET, [make_document(args.seed, i) for i in changed])  # restore
        stages = cold.stage_seconds
        for name, value in (
            ("cold_wall", cold.wall),
            ("sensor_tick", cold.tick_seconds),
            ("raw_documents", cold.stage_seconds["raw_documents"]),
            ("chunks", cold.stage_seconds["chunks"]),
            ("embed_calls", cold.stage_seconds["embed_calls"]),
            ("embeddings_other", stages["embeddings"] - stages["embed_calls"]),
            ("qdrant_collection", cold.stage_seconds["qdrant_collection"]),
            ("dagster_overhead", cold.dagster_overhead),
            ("embedding_only", floor.seconds),
            ("unchanged_wall", unchanged.wall),
            ("changed_wall", after_change.wall),
        ):  # fmt: skip
            rows[name].append(value)
        last = {"cold": cold, "texts": len(texts), "unchanged": unchanged, "changed": after_change}
    out: dict[str, Any] = {k: median(v) for k, v in rows.items()}
    out |= {"model_load": loading.seconds, "n_changed": n_changed, "last": last, "raw": rows}
    out["io_split"] = _io_split(client, [d for d in _keys(args)])
    if args.profile:
        out["profile"] = _profile(args, endpoint, tmp / "pipeline-profile")
    return out


def _keys(args: argparse.Namespace) -> list[str]:
    return [make_document(args.seed, i).key for i in range(args.docs)]


def _profile(args: argparse.Namespace, endpoint: str, workdir: Path) -> str:
    """One extra cold ingest under pyinstrument (cProfile if it is missing); not in medians."""
    from .pipeline import pipeline_env

    out = args.out.with_suffix(".profile.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    with pipeline_env(endpoint, BUCKET, workdir, args.partitions_per_run) as env:
        try:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
            env.sync()
            profiler.stop()
            text = profiler.output_text(unicode=False, color=False, show_all=False)
        except ImportError:
            import cProfile
            import io
            import pstats

            prof = cProfile.Profile()
            prof.runcall(env.sync)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(60)
            text = buf.getvalue()
    out.write_text(text)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Request logs of the local S3 server and INFO chatter are not what we measure.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from .report import write_report

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": common.machine_info(), "argv": sys.argv[1:]}
    docs = make_corpus(args.docs, args.seed)
    results["corpus"] = docs
    results["corpus_seed"] = args.seed
    with moto_server() as endpoint, tempfile.TemporaryDirectory(prefix="rag-bench-") as tmpdir:
        tmp = Path(tmpdir)
        client = s3_client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        with Stopwatch() as uploading:
            upload(client, BUCKET, docs)
        results["upload_seconds"] = uploading.seconds
        _say(f"corpus: {len(docs)} documents uploaded in {uploading.seconds:.1f}s")
        results["pipeline"] = _pipeline(args, endpoint, client, tmp)
        _say(f"pipeline: cold {results['pipeline']['cold_wall']:.1f}s (median)")
        keys = _keys(args)
        if "seed" not in args.skip:
            from .seed_approach import run_seed

            step = max(1, len(keys) // max(1, args.seed_subset))
            subset = keys[::step][: args.seed_subset]
            runs = [
                run_seed(client, BUCKET, subset, tmp / f"seed-{r}") for r in range(args.repeats)
            ]
            results["seed"] = runs
            _say(f"seed: {median([m.seconds for m in runs]):.1f}s for {len(subset)} documents")
        if "llamaindex" not in args.skip:
            from . import llamaindex_peer
            from .llamaindex_peer import FITTED

            if llamaindex_peer.available():
                model = llamaindex_peer.load_embedder()
                for name, splitter in (("llamaindex", None), ("llamaindex_fit", FITTED)):
                    results[name] = [
                        llamaindex_peer.run_llamaindex(
                            client, BUCKET, keys, tmp / f"{name}-{r}", model, splitter
                        )
                        for r in range(args.repeats)
                    ]
                    _say(f"{name}: {median([m.seconds for m in results[name]]):.1f}s")
            else:
                results["llamaindex_missing"] = True
                _say("llamaindex: not installed, skipped")
        if "floor" not in args.skip:
            from .dagster_floor import run_floor, run_metadata

            per_run = args.partitions_per_run
            results["floor"] = run_floor(args.docs, per_run)
            results["floor_subset"] = run_floor(args.docs, per_run, subset_planned=True)
            results["metadata"] = run_metadata(args.metadata_registered, per_run)
            _say(f"dagster floor: {results['floor'].per_document * 1000:.0f} ms per document")
        if "sensor" not in args.skip:
            from .sensor_scale import run_scale

            results["sensor"] = run_scale(
                client, endpoint, args.sensor_keys, tmp / "sensor", args.sensor_submit_runs
            )
            _say(f"sensor: steady tick {results['sensor'].steady_tick.seconds:.1f}s")
    results["total_seconds"] = time.perf_counter() - started
    write_report(args, results)
    _say(f"wrote {args.out}")
    return 0


def _say(line: str) -> None:
    print(f"[bench] {line}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
