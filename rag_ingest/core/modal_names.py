"""Names shared by the Modal app and the Dagster resource that looks it up (no Modal import).

This module is the single source of the deployed names and of the default GPU: the app
(``modal_functions.embedder``), the resource's defaults and the price lookup all import them
from here. It lives in core so that the arrow runs one way: the deployable app imports core,
core never imports the app.
"""

APP_NAME = "rag-ingest-embedder"
# Not "Embedder": that is the Dagster resource base class in ``rag_ingest.resources.embedders``.
CLASS_NAME = "EmbeddingModel"
GPU = "A10G"
DEPLOY_COMMAND = "modal deploy -m modal_functions.embedder"
# Where a model's weights sit in the image, and the variable carrying its ModelSpec there.
MODEL_MOUNT = "/model"
SPEC_ENV = "RAG_EMBED_SPEC"


def app_name(model: str = "", key: str = "") -> str:
    """The deployed app of a model: :data:`APP_NAME` for the default (``model`` empty), else
    ``APP_NAME-<model's last name part>-<key>``, where ``key`` is a short hash of the model,
    its revision and prompts: one app per model, and within Modal's 64-character names."""
    if not model:
        return APP_NAME
    tail = model.rstrip("/").rsplit("/", 1)[-1].lower()
    slug = "".join(c if c.isalnum() else "-" for c in tail).strip("-")[:32] or "model"
    return f"{APP_NAME}-{slug}-{key}"
