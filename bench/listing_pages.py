"""A listing pass over a large prefix, paged across sensor ticks (M2): per-tick seconds and
keys on a simulated bucket (S3's ``list_objects_v2`` pages served from memory: moto's listing
is quadratic in the bucket's size) and the real registry on SQLite.

    python -m bench.listing_pages --keys 1000000 --per-tick 50000 \
        --out bench/results/listing-pages-1m.md

Passes: the first (every key new), an unchanged one, and one with 0.1% of the keys deleted
and 0.1% changed. Each tick is timed as the sensor's listing part runs it (``listing_tick``:
listing, registry range read, diff, writes); run requests are not included (they do not
depend on the prefix's size, only on the shards with work).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from .common import machine_info


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--per-tick", type=int, default=50_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from rag_ingest.core.planning.listing import DeleteGuard
    from rag_ingest.core.registry import Registry, default_url
    from rag_ingest.testing.listing import PagedBucket, paged_pass

    keys = [f"p/{i:08d}/{'AaBb'[i % 4]}.txt" for i in range(args.keys)]
    bucket = PagedBucket(keys)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry(default_url(Path(tmp)))
        for name, change in (
            ("first pass (all new)", None),
            ("unchanged", None),
            ("0.1% deleted, 0.1% changed", "mutate"),
        ):
            if change:
                step = 1000
                bucket.keys = [k for i, k in enumerate(keys) if i % step != 1]
                bucket.etag = {k: "e2" for i, k in enumerate(keys) if i % step == 2}
            started = time.perf_counter()
            ticks = paged_pass(
                bucket, reg, "bkt", "p/", args.per_tick, DeleteGuard(), 20, max_new=200_000
            )
            total = time.perf_counter() - started
            seconds = [s for _, s in ticks]
            rows.append(
                f"| {name} | {len(ticks)} | {max(t.plan.listed for t, _ in ticks):,} | "
                f"{statistics.median(seconds):.2f} | {max(seconds):.2f} | {total:.1f} |"
            )
            print(rows[-1], flush=True)
        counts = reg.status_counts()
        reg.close()
    text = "\n".join(
        [
            f"# Paged listing pass: {args.keys:,} simulated keys, {args.per_tick:,} keys/tick",
            "",
            f"Machine: {machine_info()}. Registry: SQLite (WAL) in a temporary folder. "
            "Listing pages served from memory (no network); on AWS add ~100-200 ms per "
            "1,000-key page, i.e. ~5-10 s per 50,000-key tick, inside the 20-s default budget.",
            "",
            "| pass | ticks | max keys/tick | median s/tick | max s/tick | pass s |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Registry after: {dict(sorted(counts.items()))}",
            "",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
