"""The ingestion job the sensors launch: all four assets over a partition range, in one process
(the model loads once per run, not once per step)."""

import dagster as dg

from rag_ingest.assets import GROUP
from rag_ingest.partitions import documents_partitions

ingest_job = dg.define_asset_job(
    "ingest_documents",
    selection=dg.AssetSelection.groups(GROUP),
    partitions_def=documents_partitions,
    executor_def=dg.in_process_executor,
    description="S3 objects → chunks → embeddings → Qdrant for a range of document partitions.",
)
