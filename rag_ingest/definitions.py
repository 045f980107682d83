"""The code location: assets, job, one sensor per prefix, resources wired from the environment."""

import os

import dagster as dg

from rag_ingest.assets import ingestion_assets
from rag_ingest.checks import ingestion_checks
from rag_ingest.core.config import Settings
from rag_ingest.core.registry import default_url
from rag_ingest.embedders import LocalEmbedder
from rag_ingest.jobs import ingest_job
from rag_ingest.modal_embedder import ModalEmbedder
from rag_ingest.monitoring import build_monitoring_schedule, monitoring_assets, monitoring_job
from rag_ingest.removal import remove_documents_job
from rag_ingest.resources import DocumentRegistry, IntermediateStore, QdrantResource, S3Source
from rag_ingest.sensors import build_s3_sensor


def _env(name: str) -> dg.EnvVar | None:
    """An EnvVar for optional settings: resolved at run time, and only when set."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else None


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    data = settings.data_dir
    endpoint = _env("RAG_S3_ENDPOINT_URL")
    region = _env("AWS_REGION") or _env("AWS_DEFAULT_REGION")
    return {
        "s3_source": S3Source(
            bucket=dg.EnvVar("RAG_S3_BUCKET"), endpoint_url=endpoint, region_name=region
        ),
        "registry": DocumentRegistry(url=_env("RAG_REGISTRY_URL") or default_url(data)),
        "storage": IntermediateStore(
            base=_env("RAG_STORAGE_BASE") or str(data / "storage"),
            endpoint_url=endpoint,
            region_name=region,
        ),
        "qdrant": QdrantResource(
            url=_env("RAG_QDRANT_URL"),
            api_key=_env("RAG_QDRANT_API_KEY"),
            path=_env("RAG_QDRANT_PATH") or str(data / "qdrant"),
            collection=_env("RAG_QDRANT_COLLECTION") or "documents",
        ),
        "embedder": ModalEmbedder(environment_name=_env("MODAL_ENVIRONMENT"))
        if settings.embedder == "modal"
        else LocalEmbedder(backend=settings.embed_backend),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[*ingestion_assets, *monitoring_assets],
        asset_checks=ingestion_checks,
        jobs=[ingest_job, remove_documents_job, monitoring_job],
        schedules=[build_monitoring_schedule(settings.monitor_cron)],
        sensors=[build_s3_sensor(prefix, settings) for prefix in settings.prefixes],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
