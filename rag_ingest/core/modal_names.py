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
