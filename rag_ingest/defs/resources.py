"""Every resource, wired once from the settings; secrets only through ``dagster.EnvVar``."""

import os

import dagster as dg

from rag_ingest.core.config import Settings, load_settings
from rag_ingest.core.registry import default_url
from rag_ingest.resources import (
    DocumentRegistry,
    IntermediateStore,
    LocalEmbedder,
    S3Source,
    VectorStoreResource,
)


def _env(name: str) -> dg.EnvVar | None:
    """An EnvVar for optional values: resolved at run time, and only when set."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else None


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    endpoint = _env("RAG_S3_ENDPOINT_URL")
    region = _env("AWS_REGION") or _env("AWS_DEFAULT_REGION")
    model = {
        "model": settings.embed_model,
        "model_revision": settings.embed_model_revision,
        "query_prompt": settings.embed_query_prompt,
        "document_prompt": settings.embed_document_prompt,
    }
    if settings.embedder == "modal":
        from rag_ingest.resources.modal import ModalEmbedder

        embedder: dg.ConfigurableResource = ModalEmbedder(
            environment_name=_env("MODAL_ENVIRONMENT"), **model
        )
    else:
        embedder = LocalEmbedder(backend=settings.embed_backend, **model)
    resources: dict[str, dg.ConfigurableResource] = {
        "s3_source": S3Source(
            # Settings own the bucket and the queue (the sensors' scope and the reads must
            # name the same bucket); EnvVar is for what may carry a secret.
            bucket=settings.bucket,
            endpoint_url=endpoint,
            region_name=region,
        ),
        # A database URL may carry a password: resolved at run time, never shown.
        "registry": DocumentRegistry(
            url=_env("RAG_REGISTRY_URL") or default_url(settings.data_dir)
        ),
        "storage": IntermediateStore(
            base=settings.intermediate_base, endpoint_url=endpoint, region_name=region
        ),
        "vectors": VectorStoreResource(
            engine=settings.qdrant_engine,
            url=_env("RAG_QDRANT_URL"),
            api_key=_env("RAG_QDRANT_API_KEY"),
            path=str(settings.qdrant_path),
        ),
        "embedder": embedder,
    }
    if settings.events_queue_url:
        from rag_ingest.resources.sqs import S3EventsQueue

        # The same endpoint as S3: moto and LocalStack serve both; on AWS it is unset.
        resources["events_queue"] = S3EventsQueue(
            queue_url=settings.events_queue_url,
            endpoint_url=endpoint,
            region_name=region,
        )
    return resources


def resource_definitions(settings: Settings) -> dg.Definitions:
    # In-process: a UI materialization runs its steps in one process, so the model loads once.
    return dg.Definitions(resources=build_resources(settings), executor=dg.in_process_executor)


@dg.definitions
def defs() -> dg.Definitions:
    return resource_definitions(load_settings())
