"""Put → searchable latency: S3 event notifications (SQS) vs the listing sensor alone.

``python -m bench.events_latency --keys 100000 --repeats 3`` runs everything in this process:
a moto server (S3 + SQS, real bucket notifications), the project's definitions bound to an
embedded Qdrant Edge, a SQLite registry and a fresh Dagster instance; runs execute in process
as the tests' ``Harness.launch`` does.

Setup (not timed as latency): ``--keys`` empty objects are put straight into moto's in-process
backend and registered straight into the registry
with the outcome a run gives an empty object (``empty``, under the current target), so they
are settled and no run touches them. One seed document is ingested first through the events
path: it creates the target and loads the model (its cold run is reported apart).

Each repeat puts one new Markdown document and times, from just before ``put_object``:
the sensor tick that requests its run, the run, and the check that a point of the document
is in the collection. The wait for the next sensor tick (up to the interval) is not part of
the measured time; the report adds it from the intervals. Moto lists 100k keys slowly (each
page re-sorts the bucket), so the listing's LIST cost is measured alone and also replaced by
a listing served from memory, to separate the sensor's own work from moto's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

from rag_ingest.testing.s3 import moto_server

from .common import REGION, REPO, Stopwatch, notify, s3_client
from .corpus import make_document
from .events_report import Results, Sample, report

BUCKET = "bench-events"
EXISTING = "docs/existing/"
NEW = "docs/new/"
QUIET_LOGS: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _document(index: int) -> bytes:
    """A Markdown document of the benchmark corpus (the same one every repeat: same work)."""
    i = 0
    while (doc := make_document(7, i)).fmt != "md":
        i += 1
    return doc.body.replace(b"notes", f"notes {index}".encode(), 1)


def populate(bucket: str, n: int) -> list[Any]:
    """``n`` empty objects straight into moto's backend; returns them as listed objects."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    from rag_ingest.core.storage.s3 import S3Object

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    objects = []
    for i in range(n):
        key = f"{EXISTING}{i:07d}.txt"
        fake = backend.put_object(bucket, key, b"")
        modified = fake.last_modified.replace(tzinfo=UTC, microsecond=0)
        objects.append(S3Object(bucket, key, fake.etag.strip('"'), fake.size, modified))
    return objects


class Env:
    """The project's definitions bound to local services on one Dagster instance."""

    def __init__(self, instance: Any, settings: Any, resources: dict[str, Any]) -> None:
        self.instance, self.settings, self.resources = instance, settings, resources

    def job(self) -> Any:
        import dagster as dg
        from dagster._core.storage.defs_state.base import set_defs_state_storage

        from rag_ingest.defs.ingestion.definitions import ingestion_definitions

        defs = dg.Definitions.merge(
            ingestion_definitions(self.settings),
            dg.Definitions(resources=self.resources, executor=dg.in_process_executor),
        )
        # dagster 1.13.27: resolve against this instance (see Harness.job in the tests).
        with set_defs_state_storage(self.instance.defs_state_storage):
            return defs.resolve_job_def("ingest_documents")

    @contextmanager
    def context(self) -> Iterator[Any]:
        import dagster as dg

        with dg.build_sensor_context(instance=self.instance, resources=self.resources) as ctx:
            yield ctx

    def events_tick(self) -> Any:
        from rag_ingest.defs.ingestion.event_sensor import evaluate_events_tick

        with self.context() as ctx:
            r = ctx.resources
            queue, reg, location = r.events_queue, r.registry.registry, r.vectors.location
            return evaluate_events_tick(ctx, queue, r.s3_source, reg, self.settings, location)

    def listing_tick(self) -> Any:
        """One listing tick, carrying the sensor cursor as the daemon does (a pass over a
        large prefix spans ticks)."""
        import dagster as dg

        from rag_ingest.defs.ingestion.sensors import evaluate_listing_tick

        cursor = getattr(self, "listing_cursor", None)
        with dg.build_sensor_context(
            instance=self.instance, resources=self.resources, cursor=cursor
        ) as ctx:
            r = ctx.resources
            result = evaluate_listing_tick(
                ctx, r.s3_source, r.registry.registry, self.settings, "", r.vectors.location
            )
        self.listing_cursor = result.cursor
        return result

    def launch(self, result: Any) -> int:
        job = self.job()
        for request in result.run_requests or []:
            tags = {**request.tags, "dagster/run_key": request.run_key}
            outcome = job.execute_in_process(
                instance=self.instance, tags=tags, run_config=QUIET_LOGS, raise_on_error=False
            )
            if not outcome.success:
                raise RuntimeError(f"run {outcome.run_id} failed")
        return len(result.run_requests or [])

    def searchable(self, key: str) -> bool:
        from rag_ingest.core.keys import document_id, key_hash

        doc = document_id(BUCKET, key)
        h = key_hash(doc)
        with self.resources["vectors"].open() as store:
            name = store.resolve(self.settings.collection)
            return bool(name) and store.points_per_document(name, [doc], (h, h)).get(doc, 0) > 0


def measure(env: Env, client: Any, key: str, tick: Callable[[], Any], index: int) -> Sample:
    body = _document(index)
    started = time.perf_counter()
    client.put_object(Bucket=BUCKET, Key=key, Body=body)
    with Stopwatch() as ticking:
        result = tick()
    with Stopwatch() as running:
        runs = env.launch(result)
    with Stopwatch() as checking:
        if not env.searchable(key):
            raise RuntimeError(f"{key} is not searchable after its run")
    total = time.perf_counter() - started
    return Sample(ticking.seconds, running.seconds, checking.seconds, total, runs)


def run(keys: int, repeats: int, workdir: Path) -> Results:
    import boto3
    import dagster as dg

    from rag_ingest.core.config import Settings
    from rag_ingest.core.keys import document_id
    from rag_ingest.core.planning import listing_pass
    from rag_ingest.core.registry import Outcome
    from rag_ingest.core.storage.s3 import ListingPage, S3Object, list_objects
    from rag_ingest.resources import (
        DocumentRegistry,
        IntermediateStore,
        LocalEmbedder,
        S3Source,
        VectorStoreResource,
    )
    from rag_ingest.resources.sqs import S3EventsQueue

    results = Results(keys, repeats)
    with moto_server() as endpoint:
        client = s3_client(endpoint)
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        queue_url = sqs.create_queue(QueueName="bench-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        with Stopwatch() as populating:
            existing = populate(BUCKET, keys)
        results.populate_seconds = populating.seconds
        notify(client, BUCKET, arn["Attributes"]["QueueArn"])
        # Production defaults with a queue (events every 10 s, listing hourly), 256 shards.
        settings = Settings(
            bucket=BUCKET, data_dir=workdir, events_queue_url=queue_url, full_reconcile_hours=0,
            sensor_interval_seconds=3600,
        )  # fmt: skip
        resources: dict[str, Any] = {
            "s3_source": S3Source(bucket=BUCKET, endpoint_url=endpoint, region_name=REGION),
            "registry": DocumentRegistry(url=f"sqlite:///{workdir / 'registry.sqlite'}"),
            "storage": IntermediateStore(base=settings.intermediate_base),
            "vectors": VectorStoreResource(
                engine=settings.qdrant_engine, path=str(settings.qdrant_path)
            ),
            "embedder": LocalEmbedder(backend=settings.embed_backend),
            "events_queue": S3EventsQueue(
                queue_url=queue_url, endpoint_url=endpoint, region_name=REGION
            ),
        }
        (workdir / "dagster_home").mkdir(parents=True, exist_ok=True)
        with dg.instance_for_test(temp_dir=str(workdir / "dagster_home")) as instance:
            env = Env(instance, settings, resources)
            reg = resources["registry"].registry
            seed = measure(env, client, f"{NEW}seed.md", env.events_tick, 0)
            results.seed_seconds = seed.total
            with env.resources["vectors"].open() as store:
                target = reg.target(store.location, settings.physical_collection)
            assert target is not None, "the seed run creates the target"
            done = [Outcome(document_id(BUCKET, o.key), "empty", "empty", o.etag) for o in existing]
            with Stopwatch() as registering:
                reg.register(existing)
                reg.record(done, target.id)
            results.register_seconds = registering.seconds
            for i in range(repeats):
                sample = measure(env, client, f"{NEW}events-{i}.md", env.events_tick, i)
                results.events.append(sample)
                print(f"events #{i}: {sample}", flush=True)
            # Idle ticks: an empty queue (one long poll) and the registry's work query.
            from rag_ingest.defs.ingestion import event_sensor as events_module

            shared = events_module.request_runs

            def timed(*args: Any, **kwargs: Any) -> Any:
                with Stopwatch() as asking:
                    answer = shared(*args, **kwargs)
                results.idle_request_runs.append(asking.seconds)
                return answer

            events_module.request_runs = timed  # type: ignore[assignment]
            try:
                for _ in range(5):
                    with Stopwatch() as idle:
                        env.events_tick()
                    results.idle_events_ticks.append(idle.seconds)
            finally:
                events_module.request_runs = shared

            # Listing only: no notifications any more (nothing reaches the queue).
            notify(client, BUCKET, None)
            env.settings = settings.replace(events_queue_url="", sensor_interval_seconds=30)
            for i in range(repeats):
                sample = measure(env, client, f"{NEW}listing-{i}.md", env.listing_tick, i)
                results.listing.append(sample)
                print(f"listing #{i}: {sample}", flush=True)
            with Stopwatch() as listing:
                snapshot = list(list_objects(client, BUCKET, ""))
            results.list_only_seconds, results.listed = listing.seconds, len(snapshot)
            print(f"one full listing of {len(snapshot)} keys: {listing.seconds:.1f}s", flush=True)
            # The same with the listing served from memory (every key the bucket holds, the
            # new one HEADed): the sensor's own work at this size, without moto's LIST.
            real = listing_pass.list_page
            for i in range(repeats):
                key = f"{NEW}memory-{i}.md"

                def served(*_args: Any, _key: str = key, **_kwargs: Any) -> ListingPage:
                    head = client.head_object(Bucket=BUCKET, Key=_key)
                    etag, size = head["ETag"].strip('"'), head["ContentLength"]
                    snapshot.append(S3Object(BUCKET, _key, etag, size, head["LastModified"]))
                    return ListingPage(list(snapshot), None, True, 0)  # one whole page

                listing_pass.list_page = served  # type: ignore[assignment]
                try:
                    sample = measure(env, client, key, env.listing_tick, i)
                finally:
                    listing_pass.list_page = real
                results.listing_memory.append(sample)
                print(f"listing from memory #{i}: {sample}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="Put → searchable: S3 events vs listing")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "events_latency.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="events-latency-") as tmp:
        results = run(args.keys, args.repeats, Path(tmp))
    command = f"python -m bench.events_latency --keys {args.keys} --repeats {args.repeats}"
    Path(args.out).write_text(report(results, command))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
