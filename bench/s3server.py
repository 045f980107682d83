"""A moto S3 server in a process of its own, populated through moto's in-process backend.

The GPU-speed and burst scenarios need 100,000 objects in S3. PUTting them over HTTP costs
minutes; this child puts them straight into its own moto backend (as
``bench.events_latency.populate`` does in process) and then serves them over HTTP like any
S3 endpoint: the pipeline really GETs and LISTs every object. Keeping moto out of the
benchmark's process means its request handling does not share the pipeline's interpreter
lock (a real S3 never does).

    python -m bench.s3server --bucket B [--small-docs N --seed S] [--empty-keys N]

prints one JSON line when it serves (``endpoint``, populate seconds) and stops when its
standard input closes. :func:`s3_server` starts and stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from rag_ingest.testing.s3 import moto_server

from .common import REGION, REPO

EMPTY_PREFIX = "empty/"
_CHUNK = 2000


@dataclass(frozen=True)
class ServerInfo:
    endpoint: str
    pid: int
    bucket: str
    small_docs: int
    empty_keys: int
    populate_seconds: float
    generate_seconds: float
    bytes_stored: int


def _render_small(args: tuple[int, int, int]) -> list[tuple[str, bytes, str]]:
    from .corpus import make_small_document

    seed, start, stop = args
    out = []
    for i in range(start, stop):
        doc = make_small_document(seed, i)
        out.append((doc.key, doc.body, doc.content_type))
    return out


def _small_documents(n: int, seed: int, workers: int) -> Iterator[tuple[str, bytes, str]]:
    """The small corpus, rendered on ``workers`` processes (PDFs cost ~15 ms each)."""
    spans = [(seed, s, min(n, s + _CHUNK)) for s in range(0, n, _CHUNK)]
    if workers <= 1 or n <= _CHUNK:
        for span in spans:
            yield from _render_small(span)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_render_small, spans):
            yield from part


def _serve(args: argparse.Namespace) -> None:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    backend.create_bucket(args.bucket, REGION)
    generating = 0.0
    stored = 0
    started = time.perf_counter()
    documents = _small_documents(args.small_docs, args.seed, args.workers)
    while True:
        t = time.perf_counter()
        item = next(documents, None)
        generating += time.perf_counter() - t
        if item is None:
            break
        key, body, content_type = item
        fake = backend.put_object(args.bucket, key, body)
        fake.set_metadata({"Content-Type": content_type})
        stored += len(body)
    for i in range(args.empty_keys):
        backend.put_object(args.bucket, f"{EMPTY_PREFIX}{i:07d}.txt", b"")
    populate = time.perf_counter() - started - generating
    with moto_server() as endpoint:
        info = ServerInfo(
            endpoint,
            os.getpid(),
            args.bucket,
            args.small_docs,
            args.empty_keys,
            populate,
            generating,
            stored,
        )
        print(json.dumps(info.__dict__), flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or dies)


@contextmanager
def s3_server(
    bucket: str, small_docs: int = 0, seed: int = 7, empty_keys: int = 0, workers: int = 2
) -> Iterator[ServerInfo]:
    """Start the child, wait until it serves, yield what it reports; stop it on exit."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    cmd = [sys.executable, "-m", "bench.s3server", "--bucket", bucket, "--seed", str(seed)]
    cmd += ["--small-docs", str(small_docs), "--empty-keys", str(empty_keys)]
    cmd += ["--workers", str(workers)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the S3 server child exited with {proc.wait()}")
        yield ServerInfo(**json.loads(line))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--bucket", required=True)
    p.add_argument("--small-docs", type=int, default=0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--empty-keys", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    _serve(p.parse_args(argv))


if __name__ == "__main__":
    main()
