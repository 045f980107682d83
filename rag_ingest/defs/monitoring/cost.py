"""``embedding_cost_report``: recorded embedding work priced on Modal vs always-on GPUs."""

import dagster as dg
from pydantic import Field

from rag_ingest.core.cost import PriceTable, price_workload, render_markdown
from rag_ingest.core.modal_names import GPU
from rag_ingest.defs.monitoring import GROUP
from rag_ingest.defs.monitoring.usage import embedding_workload


class CostConfig(dg.Config):
    window_hours: float = Field(
        default=24.0 * 30,
        description="Hours of recorded embedding work (embeddings materializations) to price.",
    )
    gpu: str = Field(
        default=GPU,
        description="The GPU type the work is priced on; must have a Modal price in the table.",
    )
    assumed_tokens_per_gpu_second: float | None = Field(
        default=None,
        description="Tokens per GPU-second to estimate GPU time with when the runs recorded "
        "none (a local embedder); unset: such work is priced at zero GPU-seconds.",
    )
    prices_file: str | None = Field(
        default=None,
        description='A JSON file of prices updating the built-in ones: {"modal_per_second": '
        '{gpu: usd}, "always_on_per_hour": {name: usd}}.',
    )


@dg.asset(
    group_name=GROUP,
    kinds={"modal"},
    deps=["embeddings"],
    description="Recorded embedding work priced on Modal per second vs always-on GPUs.",
)
def embedding_cost_report(
    context: dg.AssetExecutionContext, config: CostConfig
) -> dg.MaterializeResult:
    workload = embedding_workload(context.instance, config.window_hours)
    report = price_workload(
        workload,
        config.gpu,
        PriceTable.load(config.prices_file),
        config.assumed_tokens_per_gpu_second,
    )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(render_markdown(report)),
            "window_hours": config.window_hours,
            "embedding_runs": workload.runs,
            "chunks_embedded": workload.texts,
            "tokens_embedded": workload.tokens,
            "gpu_seconds": dg.MetadataValue.float(round(report.gpu_seconds, 3)),
            "gpu_seconds_source": report.gpu_seconds_source,
            "modal_usd": dg.MetadataValue.float(round(report.lines[0].usd, 6)),
            "gpu_utilisation": dg.MetadataValue.float(round(report.utilisation, 6)),
        }
    )
