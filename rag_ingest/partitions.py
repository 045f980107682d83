"""The one partitions definition: one dynamic partition per S3 object (see ``core.keys``)."""

import dagster as dg

DOCUMENTS_PARTITION = "documents"

documents_partitions = dg.DynamicPartitionsDefinition(name=DOCUMENTS_PARTITION)
