"""GPU-speed scenario: many small documents through the real sensor → runs → Qdrant Edge path
with the BENCH-ONLY hashing embedder (``bench.hashing_embedder``), so that everything but the
model is what is measured.

One listing tick registers the burst and requests runs over shard ranges; every requested run
executes in process on a persistent Dagster instance (the tests' ``Harness`` with the job
resolved once, as a code location holds it); ticks repeat until one requests nothing. The wall
ends when the last run ends (every document is then searchable); that last, confirming tick
is timed apart (``confirm``), like the bench's own final check.
Stage seconds come from each asset's ``run_seconds``/``run_embed_seconds`` materialization
metadata and from timers this module wraps around the listing, the shards' verification and
the version check (``ShardWriter.verify_shards``, ``maybe_promote``); Dagster's bookkeeping is each
run's wall time minus its four asset bodies.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import Stopwatch, proc_status_mb

ASSETS = ("raw_documents", "chunks", "embeddings", "qdrant_collection")
QUIET_LOGS: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
INSTANCE_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"


@dataclass
class Timers:
    """Seconds accumulated by wrapped functions (listing, verification)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + value


@dataclass
class TickTiming:
    seconds: float
    listing_seconds: float
    runs_requested: int
    documents_requested: list[int]


@dataclass
class RunTiming:
    run_id: str
    first: str
    last: str
    shards: int
    wall: float
    success: bool
    verify_seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    embed_seconds: float = 0.0
    documents: int = 0
    documents_ok: int = 0
    chunks: int = 0
    points: int = 0

    @property
    def bodies(self) -> float:
        return sum(self.steps.values())

    @property
    def dagster(self) -> float:
        """Run wall time outside the asset bodies: run creation (planned events), step
        orchestration, storing materializations and check results, resource setup."""
        return self.wall - self.bodies


@dataclass
class GpuSpeedResult:
    documents: int
    shards: int
    documents_per_run: int
    wall: float = 0.0
    ticks: list[TickTiming] = field(default_factory=list)
    confirm: TickTiming | None = None  # the tick that found no work: after the wall
    runs: list[RunTiming] = field(default_factory=list)
    check_seconds: float = 0.0
    points: int = 0
    registry_chunks: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    work_left: int = -1
    get_seconds_threads: float = 0.0  # summed over fetch threads (not wall)
    gets: int = 0
    peak_rss_mb: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    home: str = ""
    data_dir: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def listing(self) -> float:
        return sum(t.listing_seconds for t in self.ticks)

    @property
    def tick_seconds(self) -> float:
        return sum(t.seconds for t in self.ticks)

    def stage(self, name: str) -> float:
        return sum(r.steps.get(name, 0.0) for r in self.runs)

    @property
    def embed_calls(self) -> float:
        return sum(r.embed_seconds for r in self.runs)

    @property
    def verification(self) -> float:
        return sum(r.verify_seconds for r in self.runs)

    @property
    def dagster(self) -> float:
        return sum(r.dagster for r in self.runs)

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.wall if self.wall else float("nan")

    @property
    def wall_without_listing(self) -> float:
        """The wall time less moto's LIST (an O(n²) artifact of moto; see the report)."""
        return self.wall - self.listing

    @property
    def docs_per_second_without_listing(self) -> float:
        w = self.wall_without_listing
        return self.documents / w if w else float("nan")


@dataclass
class GetRate:
    objects: int
    threads: int
    seconds: float
    bytes: int

    @property
    def per_second(self) -> float:
        return self.objects / self.seconds if self.seconds else float("nan")


def bare_get_rate(client: Any, bucket: str, keys: list[str], threads: int) -> GetRate:
    """GET every key (body read in full) on ``threads`` threads: moto's own rate, nothing
    else (no extraction, no registry, no Dagster)."""

    def get(key: str) -> int:
        response = client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            return len(body.read())
        finally:
            body.close()

    with Stopwatch() as sw, ThreadPoolExecutor(max_workers=threads) as pool:
        total = sum(pool.map(get, keys))
    return GetRate(len(keys), threads, sw.seconds, total)


@contextmanager
def _patched(obj: Any, name: str, wrap: Callable[[Any], Any]) -> Iterator[None]:
    original = getattr(obj, name)
    setattr(obj, name, wrap(original))
    try:
        yield
    finally:
        setattr(obj, name, original)


@contextmanager
def instrumented(timers: Timers) -> Iterator[None]:
    """Timers around the listing (each page the listing sensor asks for), the shards'
    verification, the version check and each S3 GET. Behaviour is unchanged."""
    from rag_ingest.core.pipeline import steps as stages
    from rag_ingest.core.pipeline import write
    from rag_ingest.core.planning import listing_pass
    from rag_ingest.core.storage import s3 as s3_module
    from rag_ingest.defs.ingestion import qdrant_collection

    def timed(name: str) -> Callable[[Any], Any]:
        def wrap(original: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    timers.add(name, time.perf_counter() - started)
                    if name == "get":
                        timers.add("gets", 1)

            return call

        return wrap

    with (
        _patched(listing_pass, "list_page", timed("listing")),
        _patched(write.ShardWriter, "verify_shards", timed("verify")),
        _patched(qdrant_collection, "maybe_promote", timed("verify")),
        _patched(s3_module, "fetch", timed("get")),
    ):
        assert stages.s3 is s3_module  # load_document calls s3.fetch through the module
        yield


def _meta(mat: Any, name: str) -> float:
    entry = mat.metadata.get(name)
    value = getattr(entry, "value", 0) if entry is not None else 0
    return float(value) if isinstance(value, int | float) else 0.0


class Pipeline:
    """The project's definitions bound to local services on a persistent instance; the ingest
    job is resolved once (as a code location holds it), runs execute in process."""

    def __init__(
        self, home: Path, settings: Any, resources: dict[str, Any], config: str | None = None
    ) -> None:
        """``config``: the instance's dagster.yaml, written unless None (keep the home's)."""
        import dagster as dg

        from rag_ingest.testing.harness import Harness

        if config is not None:
            home.mkdir(parents=True, exist_ok=True)
            (home / "dagster.yaml").write_text(config)
        self.instance = dg.DagsterInstance.from_config(str(home))
        self.harness = Harness(self.instance, settings, resources)
        self.settings = settings
        self._job = self.harness.job("ingest_documents")

    def close(self) -> None:
        self.instance.dispose()

    def tick(self, timers: Timers, events: bool = False) -> tuple[Any, TickTiming]:
        """One tick of the listing sensor, or of the event sensor when ``events``."""
        before = timers.seconds.get("listing", 0.0)
        with Stopwatch() as sw:
            result = self.harness.events_tick() if events else self.harness.tick()
        requests = list(result.run_requests or [])
        docs = [int(r.tags.get("rag_ingest/documents", 0)) for r in requests]
        listing = timers.seconds.get("listing", 0.0) - before
        return result, TickTiming(sw.seconds, listing, len(requests), docs)

    def execute(self, request: Any, timers: Timers) -> RunTiming:
        from rag_ingest.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG

        tags = dict(request.tags)
        if request.run_key:
            tags["dagster/run_key"] = request.run_key  # as the daemon records it
        verify_before = timers.seconds.get("verify", 0.0)
        with Stopwatch() as sw:
            outcome = self._job.execute_in_process(
                instance=self.instance, tags=tags, run_config=QUIET_LOGS, raise_on_error=False
            )
        first, last = tags[RANGE_START_TAG], tags[RANGE_END_TAG]
        layout = self.settings.shard_layout
        timing = RunTiming(
            outcome.run_id,
            first,
            last,
            layout.index(last) - layout.index(first) + 1,
            sw.seconds,
            outcome.success,
            timers.seconds.get("verify", 0.0) - verify_before,
        )
        seen: set[str] = set()
        for event in outcome.get_asset_materialization_events():
            mat = event.materialization
            asset = mat.asset_key.to_user_string()
            if asset in seen or "run_seconds" not in mat.metadata:
                continue  # each shard's materialization repeats the run_* totals
            seen.add(asset)
            timing.steps[asset] = _meta(mat, "run_seconds")
            if asset == "raw_documents":
                timing.documents = int(_meta(mat, "run_documents"))
                timing.documents_ok = int(_meta(mat, "run_ok"))
            elif asset == "chunks":
                timing.chunks = int(_meta(mat, "run_chunks"))
            elif asset == "embeddings":
                timing.embed_seconds = _meta(mat, "run_embed_seconds")
            elif asset == "qdrant_collection":
                timing.points = int(_meta(mat, "run_points_written"))
        return timing


def chosen_settings() -> dict[str, Any]:
    """The ``RAG_*`` settings set in this process's environment (e.g. ``RAG_SPARSE=false`` for
    one variant of ``bench.compare_commits``): they override the scenario's own, except where
    the data lives."""
    from rag_ingest.core.config import Settings

    env = Settings.from_env()
    return {k: getattr(env, k) for k in env.model_fields_set - {"bucket", "data_dir"}}


def scenario_settings(bucket: str, data: Path, shards: int, documents_per_run: int) -> Any:
    """The tests' deployment, every core extracting, then any ``RAG_*`` of the environment."""
    from rag_ingest.testing.harness import make_settings

    workers = os.cpu_count() or 1
    paced = {"sensor_interval_seconds": 30, "retry_backoff_seconds": 30}
    return make_settings(
        bucket,
        data,
        shards=shards,
        documents_per_run=documents_per_run,
        extract_workers=workers,
        **paced,
        **chosen_settings(),
    )


def run_gpu_speed(
    endpoint: str,
    bucket: str,
    documents: int,
    workdir: Path,
    shards: int = 256,
    documents_per_run: int = 2000,
    max_ticks: int = 5,
    say: Callable[[str], None] = print,
    embedder: Any = None,
    label: str = "gpu-speed",
    instance_yaml: str = INSTANCE_YAML,
) -> GpuSpeedResult:
    """Ingest every object of ``bucket`` (``documents`` of them) and measure each stage.
    ``embedder``: the BENCH-ONLY hashing embedder unless given (the CPU scenario passes the
    real model). ``instance_yaml``: the Dagster instance's configuration (its storage)."""
    from rag_ingest.testing.harness import make_resources

    from .hashing_embedder import HashingEmbedder

    data = workdir / "data"
    settings = scenario_settings(bucket, data, shards, documents_per_run)
    resources = make_resources(endpoint, settings, embedder=embedder or HashingEmbedder())
    result = GpuSpeedResult(documents, shards, documents_per_run, home=str(workdir / "home"))
    result.data_dir = str(data)
    result.load_before = os.getloadavg()
    timers = Timers()
    pipeline = Pipeline(workdir / "home", settings, resources, instance_yaml)
    try:
        with instrumented(timers):
            started = time.perf_counter()
            for _ in range(max_ticks):
                sensor_result, tick = pipeline.tick(timers)
                say(
                    f"{label}: tick {len(result.ticks) + 1}: {tick.seconds:.1f}s (listing "
                    f"{tick.listing_seconds:.1f}s), {tick.runs_requested} run(s) over "
                    f"{sum(tick.documents_requested)} document(s)"
                )
                requests = list(sensor_result.run_requests or [])
                result.requests += [{"tags": dict(r.tags), "run_key": r.run_key} for r in requests]
                if not requests:
                    result.confirm = tick
                    break
                result.ticks.append(tick)
                for i, request in enumerate(requests):
                    run = pipeline.execute(request, timers)
                    result.runs.append(run)
                    if i % 10 == 0 or not run.success:
                        say(
                            f"{label}: run {len(result.runs)} ({run.first}-{run.last}, "
                            f"{run.documents} docs): {run.wall:.1f}s, dagster "
                            f"{run.dagster:.1f}s, {'ok' if run.success else 'FAILED'}"
                        )
                result.wall = time.perf_counter() - started
        result.get_seconds_threads = timers.seconds.get("get", 0.0)
        result.gets = int(timers.seconds.get("gets", 0))
        with Stopwatch() as checking:
            _final_check(pipeline, result)
        result.check_seconds = checking.seconds
    finally:
        pipeline.close()
        result.load_after = os.getloadavg()
        result.peak_rss_mb = proc_status_mb("VmHWM")
    return result


def _final_check(pipeline: Pipeline, result: GpuSpeedResult) -> None:
    """The bench's own check, outside the timed wall: every document has a final state in the
    current target, and the collection holds exactly the points the registry records."""
    harness = pipeline.harness
    reg = harness.registry
    settings = pipeline.settings
    with harness.store() as store:
        target = reg.target(store.location, settings.physical_collection)
        assert target is not None, "no target: nothing was written"
        result.points = store.count(target.collection)
    result.work_left = reg.work_count(settings.scope, target.id)
    result.registry_chunks = sum(reg.ingested_chunks(target.id, scope=settings.scope).values())
    result.statuses = reg.status_counts(settings.scope)
