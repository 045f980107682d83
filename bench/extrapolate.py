"""1,000,000 documents, EXTRAPOLATED from the GPU-speed scenario's measured per-stage costs.

Nothing here is measured at that size. The CPU-side cost per document (listing tick, S3 GET +
extraction, chunking, vector store write, Dagster bookkeeping) is the measured seconds divided
by the documents; it scales out by shard ranges, one run per worker machine like this one.
Embedding is priced from an ASSUMED A10G MiniLM rate (``--a10g-chunks-per-second``): no GPU
was lent to this benchmark, so that rate is not measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from .gpu_speed import GpuSpeedResult

TARGET_DOCUMENTS = 1_000_000


@dataclass(frozen=True)
class Extrapolation:
    documents: int
    machines: int
    cpu_seconds_per_doc: float  # wall seconds of one 2-core machine per document, no embedding
    chunks: int
    points: int
    a10g_rate: float  # ASSUMED chunks/s of one A10G
    a10g_dollars_per_hour: float
    containers: int

    @property
    def machine_hours(self) -> float:
        return self.documents * self.cpu_seconds_per_doc / 3600

    @property
    def cpu_wall_hours(self) -> float:
        return self.machine_hours / self.machines

    @property
    def gpu_hours(self) -> float:
        return self.chunks / self.a10g_rate / 3600

    @property
    def gpu_wall_hours(self) -> float:
        return self.gpu_hours / self.containers

    @property
    def wall_hours(self) -> float:
        # Runs of different shard ranges overlap: one run's embedding runs while another's
        # worker fetches, so the wall is the slower side, not the sum.
        return max(self.cpu_wall_hours, self.gpu_wall_hours)

    @property
    def gpu_dollars(self) -> float:
        return self.gpu_hours * self.a10g_dollars_per_hour


def extrapolate(
    gpu: GpuSpeedResult,
    a10g_rate: float,
    a10g_dollars_per_hour: float,
    machines: int = 10,
    documents: int = TARGET_DOCUMENTS,
) -> Extrapolation:
    """Scale the measured run: the wall without embedding per document, the chunks per
    document; containers sized so the GPUs keep up with ``machines`` workers."""
    embed = gpu.stage("embeddings")
    cpu_per_doc = (gpu.wall - embed) / gpu.documents
    chunks_per_doc = gpu.registry_chunks / gpu.documents if gpu.documents else 0.0
    chunks = round(chunks_per_doc * documents)
    cpu_wall = documents * cpu_per_doc / 3600 / machines
    gpu_hours = chunks / a10g_rate / 3600
    containers = max(1, -(-int(gpu_hours * 1000) // max(1, int(cpu_wall * 1000))))
    return Extrapolation(
        documents,
        machines,
        cpu_per_doc,
        chunks,
        chunks,
        a10g_rate,
        a10g_dollars_per_hour,
        containers,
    )


def render_extrapolation(gpu: GpuSpeedResult, rate: float, dollars: float) -> list[str]:
    """The markdown section: every number EXTRAPOLATED, the GPU rate an ASSUMPTION."""
    from .markdown import f as _f
    from .markdown import table as _table

    x = extrapolate(gpu, rate, dollars)
    return [
        "### 1,000,000 documents — EXTRAPOLATED, not measured",
        "",
        f"From the last repeat: {_f(1000 * x.cpu_seconds_per_doc, 2)} ms of this machine's wall "
        f"per document without embedding, {_f(x.chunks / x.documents, 2)} chunks per document.",
        f"The A10G rate of {_f(x.a10g_rate, 0)} MiniLM chunks/s is an **ASSUMPTION** (no GPU "
        f"was lent to this benchmark; set `--a10g-chunks-per-second`), at "
        f"${_f(x.a10g_dollars_per_hour)}/h.",
        "",
        *_table(
            ["quantity", "value"],
            [
                ["documents", f"{x.documents:,}"],
                ["chunks = Qdrant points", f"{x.chunks:,}"],
                ["worker machine-hours (2 cores, like this one)", _f(x.machine_hours, 1)],
                ["worker machines (one run each, disjoint shard ranges)", str(x.machines)],
                ["A10G GPU-hours (ASSUMED rate)", _f(x.gpu_hours, 2)],
                ["Modal A10G containers to keep up with the workers", str(x.containers)],
                ["Modal A10G dollars (ASSUMED rate × $/h)", "$" + _f(x.gpu_dollars, 2)],
                [
                    "Qdrant server",
                    f"one server for {x.points:,} points (384-d float32 ≈ "
                    f"{_f(x.points * 384 * 4 / 2**30, 1)} GiB of vectors before index)",
                ],
                ["wall (slower of workers and GPUs)", f"{_f(x.wall_hours, 1)} h"],
            ],
        ),
        "Worker machines are priced by their hours only (no VM price is assumed); the Qdrant "
        "server's write rate at this size was not measured (Qdrant Edge is embedded here).",
        "",
    ]
