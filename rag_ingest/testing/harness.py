"""The project's definitions bound to local services, and driving sensor ticks and runs in
process: what the tests and the benchmark run the pipeline with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.core.registry import Registry
from rag_ingest.core.vectorstore import VectorStore
from rag_ingest.defs.ingestion.definitions import ingestion_definitions
from rag_ingest.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG, evaluate_listing_tick
from rag_ingest.defs.maintenance.definitions import maintenance_definitions
from rag_ingest.defs.monitoring.definitions import monitoring_definitions
from rag_ingest.defs.resources import build_resources
from rag_ingest.resources import DocumentRegistry, S3Source, VectorStoreResource


def make_settings(bucket: str, data_dir: Path, **changes: Any) -> Settings:
    """Settings for a test deployment: embedded Qdrant Edge under ``data_dir``, 16 shards (a
    run over all of them costs Dagster a few seconds, not half a minute), no periodic full
    reconcile (tests ask for one when they want it)."""
    base = Settings(
        bucket=bucket,
        data_dir=data_dir,
        shards=16,
        full_reconcile_hours=0,
        extract_workers=1,
        sensor_interval_seconds=1,
        retry_backoff_seconds=1,
    )
    return base.replace(**changes)


def make_resources(
    endpoint: str, settings: Settings, embedder: Any = None, **s3_kwargs: Any
) -> dict[str, dg.ConfigurableResource]:
    """The code location's resources for ``settings`` (``build_resources``), except where a
    test differs: the bucket at ``endpoint`` (named outright, not through the environment) with
    two attempts, not waiting long for an embedded store's lock, and an injected embedder."""
    resources = build_resources(settings)
    resources["s3_source"] = S3Source(
        bucket=settings.bucket,
        endpoint_url=endpoint,
        region_name="us-east-1",
        max_attempts=2,
        **s3_kwargs,
    )
    resources["vectors"] = VectorStoreResource(
        engine=settings.qdrant_engine,
        path=str(settings.qdrant_path),
        lock_wait_seconds=5,
    )
    if embedder is not None:
        resources["embedder"] = embedder
    return resources


def project_definitions(
    settings: Settings, resources: dict[str, dg.ConfigurableResource]
) -> dg.Definitions:
    """The project's definitions for ``settings``, bound to test resources."""
    return dg.Definitions.merge(
        ingestion_definitions(settings),
        maintenance_definitions(settings),
        monitoring_definitions(settings),
        dg.Definitions(resources=resources, executor=dg.in_process_executor),
    )


@dataclass
class Harness:
    """A Dagster test instance plus the project's definitions bound to local services."""

    instance: dg.DagsterInstance
    settings: Settings
    resources: dict[str, dg.ConfigurableResource]
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)
    failed_attempts: int = 0
    run_keys: set[str] = field(default_factory=set)
    # Each listing sensor's cursor, kept between ticks as the daemon keeps it.
    cursors: dict[str, str | None] = field(default_factory=dict)

    @property
    def defs(self) -> dg.Definitions:
        return project_definitions(self.settings, self.resources)

    def job(self, name: str) -> dg.JobDefinition:
        """A job of the project's definitions, resolved against this harness's instance.

        dagster 1.13.27's ``DagsterInstance.__exit__`` (used by ``instance_for_test``) leaves
        its state storage in a context variable; resolving definitions later would read that
        disposed instance, so resolution is pinned to ours.
        """
        from dagster._core.storage.defs_state.base import set_defs_state_storage

        with set_defs_state_storage(self.instance.defs_state_storage):
            return self.defs.resolve_job_def(name)

    def _sensor_context(self, *names: str, cursor: str | None = None) -> dg.SensorEvaluationContext:
        """A sensor context with these resources, resolved as the daemon resolves them."""
        return dg.build_sensor_context(
            instance=self.instance, resources={k: self.resources[k] for k in names}, cursor=cursor
        )

    def tick(self, prefix: str | None = None) -> dg.SensorResult:
        """One evaluation of a prefix sensor, with resources resolved as the daemon does, and
        its cursor kept for the next."""
        prefix = self.settings.prefixes[0] if prefix is None else prefix
        cursor = self.cursors.get(prefix)
        with self._sensor_context("s3_source", "registry", "vectors", cursor=cursor) as context:
            res = context.resources
            result = evaluate_listing_tick(
                context,
                res.s3_source,
                res.registry.registry,
                self.settings,
                prefix,
                res.vectors.location,
                res.vectors,
            )
        self.cursors[prefix] = result.cursor
        return result

    def listing_pass(self, prefix: str | None = None, max_ticks: int = 10_000) -> int:
        """Tick a prefix's sensor until its listing pass is complete; returns the ticks."""
        for n in range(1, max_ticks + 1):
            self.tick(prefix)
            if not self.listing_in_pass(prefix):
                return n
        raise AssertionError(f"listing pass not complete after {max_ticks} ticks")

    def listing_in_pass(self, prefix: str | None = None) -> bool:
        """Whether the prefix's listing pass is part way (its cursor names a key)."""
        from rag_ingest.core.planning.listing import ListingCursor

        prefix = self.settings.prefixes[0] if prefix is None else prefix
        return not ListingCursor.from_json(self.cursors.get(prefix)).fresh

    def events_tick(self) -> dg.SensorResult:
        """One evaluation of the event sensor (needs an ``events_queue`` resource)."""
        from rag_ingest.defs.ingestion.event_sensor import evaluate_events_tick

        with self._sensor_context("s3_source", "registry", "vectors", "events_queue") as context:
            res = context.resources
            return evaluate_events_tick(
                context,
                res.events_queue,
                res.s3_source,
                res.registry.registry,
                self.settings,
                res.vectors.location,
                res.vectors,
            )

    def full_reconcile_due(self) -> None:
        """Make the next tick a periodic full reconcile (every shard, in as few runs as the
        documents allow) — with ``full_reconcile_hours`` > 0 in the settings."""
        from rag_ingest.defs.ingestion.sensors import FULL_RECONCILE_COUNTER

        self.registry.set_counter(FULL_RECONCILE_COUNTER, 1)

    def execute(
        self, job_name: str, tags: dict[str, str] | None = None, run_config: Any = None
    ) -> dg.ExecuteInProcessResult:
        return self.job(job_name).execute_in_process(
            instance=self.instance, tags=tags, run_config=run_config, raise_on_error=False
        )

    def launch(
        self, result: dg.SensorResult, retries: int = 0, rerun: bool = False
    ) -> list[dg.ExecuteInProcessResult]:
        """Execute every requested run; a failed run is re-executed up to ``retries`` times,
        as the instance's run retries would. A run key already used is skipped, as the daemon
        does for a sensor, unless ``rerun`` (an operator re-executing the runs from the UI)."""
        done = []
        for request in result.run_requests or []:
            assert isinstance(request, dg.RunRequest) and request.job_name
            tags = dict(request.tags)
            if request.run_key:
                if request.run_key in self.run_keys and not rerun:
                    continue
                self.run_keys.add(request.run_key)
                tags["dagster/run_key"] = request.run_key  # as the daemon records it
            for _attempt in range(1 + retries):
                outcome = self.execute(request.job_name, tags, request.run_config)
                if outcome.success:
                    break
                self.failed_attempts += 1
            done.append(outcome)
        self.runs += done
        return done

    def sync(self, retries: int = 0) -> list[dg.ExecuteInProcessResult]:
        """One sensor tick and every run it requested."""
        return self.launch(self.tick(), retries)

    def converge(self, timeout: float = 120.0, retries: int = 0) -> list[dg.ExecuteInProcessResult]:
        """Tick and run until the registry has no work left; waits out shards that back off
        after a run that did not finish (a killed or failed one)."""
        import time

        deadline = time.monotonic() + timeout
        done: list[dg.ExecuteInProcessResult] = []
        while True:
            done += self.sync(retries)
            with self.store() as store:
                target = self.registry.target(store.location, self.settings.physical_collection)
            waiting = self.registry.work_count(self.settings.scope, target.id if target else None)
            if not waiting:
                return done
            if time.monotonic() > deadline:
                raise TimeoutError(f"{waiting} document(s) still have work after {timeout}s")
            time.sleep(self.settings.sensor_interval_seconds)

    def materialize(
        self, first: str, last: str | None = None, force: bool = False
    ) -> dg.ExecuteInProcessResult:
        """A UI-style materialization of a shard range (optionally forced)."""
        config = {"ops": {"raw_documents": {"config": {"force": force}}}}
        tags = {RANGE_START_TAG: first, RANGE_END_TAG: last or first}
        return self.execute("ingest_documents", tags, config)

    def materialize_all(self, force: bool = False) -> dg.ExecuteInProcessResult:
        keys = self.settings.shard_layout.keys()
        return self.materialize(keys[0], keys[-1], force)

    @contextmanager
    def store(self) -> Iterator[VectorStore]:
        resource = self.resources["vectors"]
        assert isinstance(resource, VectorStoreResource)
        with resource.open() as store:
            yield store

    def points(self, collection: str | None = None) -> list[Any]:
        """Every point of the live collection (or ``collection``), with payloads and vectors."""
        with self.store() as store:
            name = collection or store.resolve(self.settings.collection)
            if name is None or not store.collection_exists(name):
                return []
            return list(store.scroll(name, with_vectors=True))

    def versions(self, collection: str | None = None) -> set[tuple[str, str, int]]:
        """(doc_id, etag, chunk_index) of every point."""
        triples = set()
        for point in self.points(collection):
            meta = point.payload["metadata"]
            triples.add((meta["doc_id"], meta["etag"], meta["chunk_index"]))
        return triples

    @property
    def registry(self) -> Registry:
        resource = self.resources["registry"]
        assert isinstance(resource, DocumentRegistry)
        return resource.registry


def shard_range(run: dg.ExecuteInProcessResult) -> tuple[str, str]:
    tags = run.dagster_run.tags
    return tags[RANGE_START_TAG], tags[RANGE_END_TAG]
