"""Names shared by the Modal app and the Dagster resource that looks it up (no Modal import).

This module is the single source of the deployed names and of the default GPU: the app, the
resource's defaults and the price lookup all import them from here.
"""

APP_NAME = "rag-ingest-embedder"
# Not "Embedder": that is the Dagster resource base class in ``rag_ingest.embedders``.
CLASS_NAME = "EmbeddingModel"
GPU = "A10G"
DEPLOY_COMMAND = "modal deploy -m modal_functions.embedder"
