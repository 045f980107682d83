"""Test helpers: wiring resources to local services and driving sensor ticks and their runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from rag_ingest.assets import ingestion_assets
from rag_ingest.checks import ingestion_checks
from rag_ingest.core.registry import Registry
from rag_ingest.embedders import LocalEmbedder
from rag_ingest.jobs import ingest_job
from rag_ingest.monitoring import monitoring_assets, monitoring_job
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
    failed_attempts: int = 0

    @property
    def defs(self) -> dg.Definitions:
        return dg.Definitions(
            assets=[*ingestion_assets, *monitoring_assets],
            asset_checks=ingestion_checks,
            jobs=[ingest_job, remove_documents_job, monitoring_job],
            resources=self.resources,
            executor=dg.in_process_executor,
        )

    def job(self, name: str) -> dg.JobDefinition:
        """A job of the project's definitions, resolved against this harness's instance.

        dagster 1.13.27's ``DagsterInstance.__exit__`` (used by ``instance_for_test``) leaves
        its state storage in a context variable; resolving definitions later would read that
        disposed instance, so resolution is pinned to ours.
        """
        from dagster._core.storage.defs_state.base import set_defs_state_storage

        with set_defs_state_storage(self.instance.defs_state_storage):
            return self.defs.resolve_job_def(name)

    def tick(self) -> dg.SensorResult:
        """One evaluation of the prefix sensor, with resources resolved as the daemon does."""
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={k: self.resources[k] for k in ("s3_source", "registry")},
        ) as context:
            source, registry = context.resources.s3_source, context.resources.registry
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

    def launch(self, result: dg.SensorResult, retries: int = 0) -> list[dg.ExecuteInProcessResult]:
        """Execute every requested run; a failed run is re-executed up to ``retries`` times,
        as the instance's run retries would."""
        done = []
        for request in result.run_requests or []:
            assert isinstance(request, dg.RunRequest) and request.job_name
            for _attempt in range(1 + retries):
                outcome = self.job(request.job_name).execute_in_process(
                    instance=self.instance,
                    tags=request.tags,
                    run_config=request.run_config,
                    raise_on_error=False,
                )
                if outcome.success:
                    break
                self.failed_attempts += 1
            done.append(outcome)
        self.runs += done
        return done

    def sync(self, retries: int = 0) -> list[dg.ExecuteInProcessResult]:
        """One sensor tick and every run it requested."""
        return self.launch(self.tick(), retries)

    def points(self) -> list[Any]:
        """Every point of the collection, with payloads (empty if it does not exist yet)."""
        qdrant = self.resources["qdrant"]
        assert isinstance(qdrant, QdrantResource)
        with qdrant.get_client() as client:
            if not client.collection_exists(qdrant.collection):
                return []
            found: list[Any] = []
            offset = None
            while True:
                page, offset = client.scroll(
                    qdrant.collection, limit=1000, offset=offset, with_payload=True
                )
                found += page
                if offset is None:
                    return found

    def versions(self) -> set[tuple[str, str, int]]:
        """(doc_id, etag, chunk_index) of every point."""
        triples = set()
        for point in self.points():
            meta = point.payload["metadata"]
            triples.add((meta["doc_id"], meta["etag"], meta["chunk_index"]))
        return triples

    @property
    def registry(self) -> Registry:
        resource = self.resources["registry"]
        assert isinstance(resource, DocumentRegistry)
        return resource.registry

    def materialize(self, partition_keys: list[str]) -> dg.ExecuteInProcessResult:
        """A UI-style re-run of chosen partitions (one range per call)."""
        job = self.job("ingest_documents")
        return job.execute_in_process(
            instance=self.instance,
            tags={
                "dagster/asset_partition_range_start": partition_keys[0],
                "dagster/asset_partition_range_end": partition_keys[-1],
            },
        )
