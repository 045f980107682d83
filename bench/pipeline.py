"""rag-ingest through its real Dagster path: sensor tick → range RunRequests → ingest runs.

Runs execute in process (as ``rag_ingest_tests.helpers.Harness.launch`` does) on a fresh
Dagster instance, registry, Parquet store and embedded Qdrant per scenario. Stage times come
from the ``run_*`` metadata the assets record on their materializations.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from rag_ingest.assets import ingestion_assets
from rag_ingest.checks import ingestion_checks
from rag_ingest.embedders import LocalEmbedder
from rag_ingest.jobs import ingest_job
from rag_ingest.partitions import DOCUMENTS_PARTITION
from rag_ingest.removal import remove_documents_job
from rag_ingest.sensors import evaluate_tick

from rag_ingest.core import records as rec
from rag_ingest.core.blobstore import BlobNotFound, open_blobstore
from rag_ingest.resources import DocumentRegistry, IntermediateStore, QdrantResource, S3Source

from .common import REGION

# Dagster's console logger prints every event at DEBUG; printing is not what we measure.
QUIET_LOGS: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class SyncMeasure:
    """One sensor tick and the runs it requested."""

    wall: float = 0.0
    tick_seconds: float = 0.0
    runs: int = 0
    failed_runs: int = 0
    # Per asset: summed ``run_seconds`` over the runs; plus the embed-call seconds.
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    documents: int = 0
    documents_ok: int = 0
    chunks: int = 0
    tokens: int = 0
    points_written: int = 0

    @property
    def asset_seconds(self) -> float:
        return sum(v for k, v in self.stage_seconds.items() if k != "embed_calls")

    @property
    def dagster_overhead(self) -> float:
        """Run wall time outside asset bodies: run/step setup, event log, resource init."""
        return self.wall - self.tick_seconds - self.asset_seconds


def _meta(materialization: dg.AssetMaterialization, name: str) -> float:
    entry = materialization.metadata.get(name)
    value = getattr(entry, "value", 0) if entry is not None else 0
    return float(value) if isinstance(value, int | float) else 0.0


@dataclass
class PipelineEnv:
    """The project's definitions bound to local services, on one fresh instance."""

    instance: dg.DagsterInstance
    resources: dict[str, Any]
    data_dir: Path
    partitions_per_run: int = 200
    cursor: str | None = None

    @property
    def defs(self) -> dg.Definitions:
        return dg.Definitions(
            assets=ingestion_assets,
            asset_checks=ingestion_checks,
            jobs=[ingest_job, remove_documents_job],
            resources=self.resources,
            executor=dg.in_process_executor,
        )

    def job(self, name: str) -> dg.JobDefinition:
        # dagster 1.13.27: resolve against this instance's defs-state storage, not a disposed
        # test instance's (the same workaround as rag_ingest_tests.helpers.Harness.job).
        from dagster._core.storage.defs_state.base import set_defs_state_storage

        with set_defs_state_storage(self.instance.defs_state_storage):
            return self.defs.resolve_job_def(name)

    def tick(self) -> dg.SensorResult:
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={k: self.resources[k] for k in ("s3_source", "registry")},
        ) as context:
            result = evaluate_tick(
                context,
                context.resources.s3_source,
                context.resources.registry.registry,
                "",
                # Every object in one tick: the benchmark times ingestion, not tick pacing.
                10**9,
                self.partitions_per_run,
            )
        self.cursor = result.cursor
        return result

    def sync(self) -> SyncMeasure:
        """One tick and every run it requested, executed in process; returns the measures."""
        measure = SyncMeasure()
        started = time.perf_counter()
        result = self.tick()
        measure.tick_seconds = time.perf_counter() - started
        for request in result.run_requests or []:
            assert isinstance(request, dg.RunRequest) and request.job_name
            outcome = self.job(request.job_name).execute_in_process(
                instance=self.instance,
                tags=request.tags,
                run_config={**dict(request.run_config or {}), **QUIET_LOGS},
                raise_on_error=False,
            )
            measure.runs += 1
            measure.failed_runs += 0 if outcome.success else 1
            _add_run_metadata(measure, outcome)
        measure.wall = time.perf_counter() - started
        return measure

    def chunk_texts(self) -> list[str]:
        """Every chunk text the pipeline produced, in partition order (from its Parquet files)."""
        store = open_blobstore(str(self.data_dir / "storage"))
        texts: list[str] = []
        for key in self.instance.get_dynamic_partitions(DOCUMENTS_PARTITION):
            try:
                _, doc_chunks = rec.load_chunks(store.read(f"chunks/{key}.parquet"))
            except BlobNotFound:
                continue  # a document that failed before chunking has no chunk file
            texts += [c.text for c in doc_chunks]
        return texts


def _add_run_metadata(measure: SyncMeasure, outcome: dg.ExecuteInProcessResult) -> None:
    # Each partition's materialization repeats the run_* totals: read one per asset.
    seen: set[str] = set()
    for event in outcome.get_asset_materialization_events():
        mat = event.materialization
        asset = mat.asset_key.to_user_string()
        if asset in seen or "run_seconds" not in mat.metadata:
            continue
        seen.add(asset)
        measure.stage_seconds[asset] += _meta(mat, "run_seconds")
        if asset == "raw_documents":
            measure.documents += int(_meta(mat, "run_documents"))
            measure.documents_ok += int(_meta(mat, "run_ok"))
        elif asset == "chunks":
            measure.chunks += int(_meta(mat, "run_chunks"))
            measure.tokens += int(_meta(mat, "run_tokens"))
        elif asset == "embeddings":
            measure.stage_seconds["embed_calls"] += _meta(mat, "run_embed_seconds")
        elif asset == "qdrant_collection":
            measure.points_written += int(_meta(mat, "run_points_written"))


@contextmanager
def pipeline_env(
    endpoint: str, bucket: str, workdir: Path, partitions_per_run: int = 200
) -> Iterator[PipelineEnv]:
    """A fresh Dagster instance (temp DAGSTER_HOME) and fresh local state under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    resources: dict[str, Any] = {
        "s3_source": S3Source(bucket=bucket, endpoint_url=endpoint, region_name=REGION),
        "registry": DocumentRegistry(url=f"sqlite:///{workdir / 'registry.sqlite'}"),
        "storage": IntermediateStore(base=str(workdir / "storage")),
        "qdrant": QdrantResource(path=str(workdir / "qdrant"), collection="documents"),
        "embedder": LocalEmbedder(),
    }
    home = workdir / "dagster_home"
    home.mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield PipelineEnv(instance, resources, workdir, partitions_per_run)
