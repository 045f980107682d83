"""The encoder sweep of ``bench.gpu_device``: the Modal app's encoder on this machine's GPU.

The code path is ``rag_ingest.core.text.encoder.Encoder.encode``, the one
``modal_functions.embedder.EmbeddingModel`` calls, over chunk texts the project's own extract and
chunk functions make from the bench's small-document corpus. Each configuration is one
precision (fp32, fp16), one batch size and one order:

* ``sorted``: every text in one ``encode`` call; sentence-transformers sorts a call's texts by
  length, so each forward pass holds texts of similar length and pads little.
* ``arrival``: one ``encode`` call per ``batch_size`` texts in the order they came (what a
  caller sending fixed batches gets): each pass pads to its longest text.

Rates: chunks/s, real tokens/s (word pieces, special tokens included, truncated at the model's
window) and padded tokens/s (what the passes computed). The FLOP-bound share counts
2 × parameters × real tokens per second against the card's datasheet peak for that precision
(:data:`PEAKS`) and against a matrix product measured on the card.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .corpus import CONTENT_TYPES, make_small_document, small_key

# Dense (no sparsity) peaks in TFLOP/s: fp32 on the CUDA cores (PyTorch leaves TF32 off for
# matrix products by default, so fp32 runs there) and fp16 on the tensor cores.
PEAKS: dict[str, dict[str, Any]] = {
    "H100 SXM": {
        "match": ("H100 80GB HBM3", "H100 SXM"),
        "fp32": 67.0,
        "fp16": 989.4,
        "source": "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column; the sparse fp16 "
        "figure 1,979 halved)",
    },
    "H100 PCIe": {
        "match": ("H100 PCIe",),
        "fp32": 51.0,
        "fp16": 756.0,
        "source": "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe column; the sparse fp16 "
        "figure 1,513 halved)",
    },
    "H200": {
        "match": ("H200",),
        "fp32": 67.0,
        "fp16": 989.4,
        "source": "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column; the sparse fp16 "
        "figure 1,979 halved)",
    },
    "A10G": {
        "match": ("A10G",),
        "fp32": 31.2,
        "fp16": 125.0,
        "source": "NVIDIA A10 datasheet (NVIDIA publishes no A10G sheet; AWS's A10G is an A10 "
        "variant, so these are an estimate for it; the sparse fp16 figure 250 halved)",
    },
}
ORDERS = ("sorted", "arrival")
PRECISIONS = ("fp32", "fp16")
# Formats whose extraction needs only the standard library (html needs beautifulsoup4, pdf
# pypdf, which a device image may lack); the prose is the same in every format.
TEXT_FORMATS = (".txt", ".md")


def peak_for(device_name: str) -> tuple[str, dict[str, Any]] | None:
    """The :data:`PEAKS` row whose name matches ``torch.cuda.get_device_name``."""
    for label, row in PEAKS.items():
        if any(m.lower() in device_name.lower() for m in row["match"]):
            return label, row
    return None


@dataclass
class SweepRow:
    precision: str
    batch_size: int
    order: str
    seconds: list[float]
    chunks: int
    tokens: int
    padded_tokens: int
    flops_per_token: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.median

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.median

    @property
    def padded_tokens_per_second(self) -> float:
        return self.padded_tokens / self.median

    @property
    def tflops(self) -> float:
        """2 × parameters × real tokens per second, in TFLOP/s."""
        return self.flops_per_token * self.tokens_per_second / 1e12


@dataclass
class SweepResult:
    device: str
    device_name: str
    texts: int = 0
    documents: int = 0
    tokens: int = 0
    parameters: int = 0
    weights: str = ""
    repeats: int = 0
    rows: list[SweepRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stopped_by_budget: bool = False
    load_seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: dict[str, float] = field(default_factory=dict)
    matmul_tflops: dict[str, float] = field(default_factory=dict)
    fp16_cosine: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def sweep_texts(count: int, spec: Any, seed: int = 7) -> tuple[list[str], int]:
    """``count`` chunk texts (and the documents they came from) of the small corpus's text and
    Markdown documents, by the pipeline's extract and chunk functions at the model's default
    chunk shape."""
    from rag_ingest.core.documents.extract import extract
    from rag_ingest.core.text.chunking import chunk_blocks, chunk_shape
    from rag_ingest.core.text.model import load_tokenizer

    max_tokens, overlap = chunk_shape(spec, None, None)
    tokenizer = load_tokenizer(spec.path)
    texts: list[str] = []
    index = documents = 0
    while len(texts) < count:
        if small_key(seed, index).endswith(TEXT_FORMATS):
            doc = make_small_document(seed, index)
            blocks = extract(doc.key, doc.body, CONTENT_TYPES[doc.fmt]).blocks
            texts += [c.text for c in chunk_blocks(blocks, max_tokens, overlap, tokenizer)]
            documents += 1
        index += 1
    return texts[:count], documents


def token_lengths(texts: list[str], spec: Any) -> list[int]:
    """Word pieces each text is fed to the model as: document prompt, special tokens, truncated
    at the model's window."""
    from rag_ingest.core.text.model import load_tokenizer

    tokenizer = load_tokenizer(spec.path)
    encoded = tokenizer.encode_batch([spec.document_prompt + t for t in texts])
    return [min(len(e.ids), spec.max_seq_length) for e in encoded]


def padded_tokens(texts: list[str], lengths: list[int], batch_size: int, order: str) -> int:
    """Token positions the forward passes compute: each pass pads to its longest text.
    ``sorted`` follows sentence-transformers' order (longest text in characters first)."""
    if order == "sorted":
        index = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    else:
        index = list(range(len(texts)))
    total = 0
    for start in range(0, len(index), batch_size):
        batch = [lengths[i] for i in index[start : start + batch_size]]
        total += max(batch) * len(batch)
    return total


def measured_matmul_tflops(device: str, n: int, dtype_name: str) -> float:
    """TFLOP/s of one n×n×n matrix product on ``device`` (median of five after two warm-ups):
    the ceiling the card reaches through the same library."""
    import torch

    dtype = torch.float16 if dtype_name == "fp16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for i in range(7):
        _sync(device)
        started = time.perf_counter()
        torch.matmul(a, b)
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times) / 1e12


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_sweep(
    texts: list[str],
    spec: Any,
    device: str,
    batch_sizes: list[int],
    precisions: list[str],
    orders: list[str],
    repeats: int,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] = print,
    matmul_n: int = 0,
) -> SweepResult:
    """Measure every configuration whose turn comes before ``deadline`` (by ``clock``); the
    rest are listed in ``skipped`` and ``stopped_by_budget`` is set."""
    import numpy as np
    import torch

    from rag_ingest.core.text.encoder import Encoder

    started = time.perf_counter()
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    result = SweepResult(device, name, texts=len(texts), repeats=repeats)
    lengths = token_lengths(texts, spec)
    result.tokens = sum(lengths)
    first_vectors: dict[str, np.ndarray] = {}
    configs = [(b, p, o) for b in batch_sizes for p in precisions for o in orders]
    encoders: dict[str, Any] = {}
    for precision in precisions:  # both loaded first: a budget cut then drops batch sizes
        if clock() >= deadline:
            break
        if matmul_n:
            result.matmul_tflops[precision] = measured_matmul_tflops(device, matmul_n, precision)
        load_started = time.perf_counter()
        encoder = Encoder(
            device=device, batch_size=batch_sizes[0], half=precision == "fp16", spec=spec
        )
        encoder.encode(texts[: max(batch_sizes)])  # warm-up: kernels chosen, allocator grown
        result.load_seconds[precision] = time.perf_counter() - load_started
        result.parameters = sum(p.numel() for p in encoder.model.parameters())
        encoders[precision] = encoder
    for batch_size, precision, order in configs:
        if clock() >= deadline or precision not in encoders:
            continue
        encoder = encoders[precision]
        encoder.batch_size = batch_size
        row = SweepRow(
            precision, batch_size, order, [], len(texts), result.tokens,
            padded_tokens(texts, lengths, batch_size, order), 2.0 * result.parameters,
        )  # fmt: skip
        for _ in range(repeats):
            t0 = time.perf_counter()
            if order == "sorted":
                vectors = encoder.encode(texts)
            else:
                vectors = np.concatenate(
                    [
                        encoder.encode(texts[i : i + batch_size])
                        for i in range(0, len(texts), batch_size)
                    ]
                )
            row.seconds.append(time.perf_counter() - t0)
        first_vectors.setdefault(precision, vectors)
        result.rows.append(row)
        say(
            f"sweep: {precision} batch {batch_size} {order}: "
            f"{row.chunks_per_second:,.0f} chunks/s, {row.tflops:.2f} TFLOP/s"
        )
    if device.startswith("cuda"):
        result.peak_memory_mb["both"] = torch.cuda.max_memory_allocated() / 2**20
    encoders.clear()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    done = {(r.precision, r.batch_size, r.order) for r in result.rows}
    result.skipped = [f"{p} batch {b} {o}" for b, p, o in configs if (p, b, o) not in done]
    result.stopped_by_budget = bool(result.skipped)
    if "fp16" in first_vectors and "fp32" in first_vectors:
        # Renormalized: fp16 vectors are unit length only to fp16's rounding.
        a, b = (first_vectors[k].astype(np.float64) for k in ("fp16", "fp32"))
        cos = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        result.fp16_cosine = {"min": float(cos.min()), "mean": float(cos.mean())}
    result.seconds = time.perf_counter() - started
    return result
