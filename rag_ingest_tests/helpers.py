"""Test helpers: wiring resources to local services and driving sensor ticks and their runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from rag_ingest.assets import ingestion_assets
from rag_ingest.embedders import LocalEmbedder
from rag_ingest.jobs import ingest_job
from rag_ingest.removal import remove_documents_job
from rag_ingest.resources import DocumentRegistry, IntermediateStore, QdrantResource, S3Source
from rag_ingest.sensors import evaluate_tick


def make_resources(
    endpoint: str, bucket: str, data_dir: Path, **s3_kwargs: Any
) -> dict[str, dg.ConfigurableResource]:
    return {
        "s3_source": S3Source(
            bucket=bucket,
            endpoint_url=endpoint,
            region_name="us-east-1",
            max_attempts=2,
            **s3_kwargs,
        ),  # type: ignore[arg-type]
        "registry": DocumentRegistry(url=f"sqlite:///{data_dir / 'registry.sqlite'}"),
        "storage": IntermediateStore(base=str(data_dir / "storage")),
        "qdrant": QdrantResource(
            path=str(data_dir / "qdrant"), collection="documents", lock_wait_seconds=5
        ),
        "embedder": LocalEmbedder(),
    }


@dataclass
class Harness:
    """A Dagster test instance plus the project's definitions bound to local services."""

    instance: dg.DagsterInstance
    resources: dict[str, dg.ConfigurableResource]
    prefix: str = ""
    max_new_per_tick: int = 5000
    partitions_per_run: int = 200
    cursor: str | None = None
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def defs(self) -> dg.Definitions:
        return dg.Definitions(
            assets=ingestion_assets,
            jobs=[ingest_job, remove_documents_job],
            resources=self.resources,
            executor=dg.in_process_executor,
        )

    def tick(self) -> dg.SensorResult:
        source = self.resources["s3_source"]
        registry = self.resources["registry"]
        assert isinstance(source, S3Source) and isinstance(registry, DocumentRegistry)
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        result = evaluate_tick(
            context,
            source,
            registry.registry,
            self.prefix,
            self.max_new_per_tick,
            self.partitions_per_run,
        )
        self.cursor = result.cursor
        return result

    def launch(self, result: dg.SensorResult) -> list[dg.ExecuteInProcessResult]:
        defs = self.defs
        done = []
        for request in result.run_requests or []:
            assert isinstance(request, dg.RunRequest) and request.job_name
            outcome = defs.resolve_job_def(request.job_name).execute_in_process(
                instance=self.instance,
                tags=request.tags,
                run_config=request.run_config,
                raise_on_error=False,
            )
            done.append(outcome)
        self.runs += done
        return done

    def sync(self) -> list[dg.ExecuteInProcessResult]:
        """One sensor tick and every run it requested."""
        return self.launch(self.tick())

    def materialize(self, partition_keys: list[str]) -> dg.ExecuteInProcessResult:
        """A UI-style re-run of chosen partitions (one range per call)."""
        job = self.defs.resolve_job_def("ingest_documents")
        return job.execute_in_process(
            instance=self.instance,
            tags={
                "dagster/asset_partition_range_start": partition_keys[0],
                "dagster/asset_partition_range_end": partition_keys[-1],
            },
        )
