"""Names shared by the Modal app and the Dagster resource that looks it up (no Modal import)."""

APP_NAME = "rag-ingest-embedder"
CLASS_NAME = "Embedder"
GPU = "A10G"
DEPLOY_COMMAND = "modal deploy -m modal_functions.embedder"
