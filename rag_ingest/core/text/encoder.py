"""The embedding model: loading and encoding, shared by the local embedder and the Modal app.

This module must stay importable without Dagster: ``modal_functions`` ships it into the Modal
image with ``add_local_python_source``, so local and GPU vectors come from the same code.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# The model's identity lives in core.text.model (export reads it too); importers keep these names.
from rag_ingest.core.text.model import DIMENSION as DIMENSION
from rag_ingest.core.text.model import INPUT_NAMES as INPUT_NAMES
from rag_ingest.core.text.model import MODEL_NAME as MODEL_NAME
from rag_ingest.core.text.model import MODEL_PACKAGE as MODEL_PACKAGE
from rag_ingest.core.text.model import MODEL_PACKAGE_VERSION as MODEL_PACKAGE_VERSION
from rag_ingest.core.text.model import ModelError, ModelSpec, resolve_model
from rag_ingest.core.text.model import load_tokenizer as load_tokenizer
from rag_ingest.core.text.model import model_dir as model_dir

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# The default all-MiniLM-L6-v2 reads at most 256 word pieces, [CLS] and [SEP] included; any
# other model's limits are its ModelSpec's.
MAX_SEQ_LENGTH = 256
SPECIAL_TOKENS = 2

# ``torch`` runs sentence-transformers (what the Modal app runs); ``onnx`` and ``openvino`` run an
# fp32 export of the same weights on the CPU (``core.text.export``; tokenizing, mean pooling and
# normalizing here, in numpy). Only runtimes that meet the quality bar and beat torch are offered:
# bench/results/embedder_backends.md, README "CPU embedding backends".
BACKENDS = ("torch", "onnx", "openvino")
DEFAULT_BACKEND = "torch"


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`, else raise a ValueError naming them."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    return backend


def vector_space(backend: str, half: bool = False) -> str:
    """Runtime and precision of a backend's vectors, e.g. ``torch-fp32`` or ``onnx-fp32``.

    Vectors from one vector space are comparable with each other only; Modal runs ``torch``.
    """
    return f"{check_backend(backend)}-{'fp16' if half else 'fp32'}"


def _load_runner(backend: str, model_file: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A callable mapping the three int64 input arrays to ``last_hidden_state``."""
    if backend == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # the fused graph is final; skip its optimizer notes
        session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        # InferenceSession.run is thread-safe.
        return lambda feed: np.asarray(session.run(None, feed)[0])

    import openvino as ov

    # LATENCY: one request uses every core (batches run one after another). f32 precision:
    # OpenVINO would otherwise run bf16 on CPUs that have it, a silent accuracy change.
    compiled = ov.Core().compile_model(
        str(model_file), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    )
    request = compiled.create_infer_request()
    lock = threading.Lock()  # an infer request is not thread-safe

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        with lock:
            return np.array(request.infer(feed)[0], copy=True)

    return run


class Encoder:
    """A sentence-transformers model, normalized float32 output, through the library itself or
    an export. Documents are embedded with the model's document prompt, queries
    (:meth:`encode_query`) with its query prompt.

    Args:
        device: ``"cpu"``, ``"cuda"`` or None for the library's choice (exported backends: CPU
            only, so None or ``"cpu"``).
        batch_size: texts per forward pass.
        half: run the model in float16 (torch on GPU only); output is still float32.
        backend: one of :data:`BACKENDS`; ``"torch"`` is sentence-transformers itself.
        cache_dir: root of the export cache for the other backends (see
            :func:`rag_ingest.core.text.export.default_cache_dir`); the first load exports there,
            later loads reuse it.
        spec: the model (:func:`rag_ingest.core.text.model.resolve_model`); the default model
            when None.

    Raises:
        ValueError: for an unknown backend, or a device or ``half`` the backend cannot honour;
            a :class:`ModelError` for a model an exported backend cannot run, or whose loaded
            dimension is not the one its files declare.
        RuntimeError: for an exported backend whose runtime (the ``cpu`` extra) is not installed.
    """

    def __init__(
        self,
        device: str | None = None,
        batch_size: int = 64,
        half: bool = False,
        backend: str = DEFAULT_BACKEND,
        cache_dir: Path | str | None = None,
        spec: ModelSpec | None = None,
    ):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.spec = spec or resolve_model()
        self.dimension = self.spec.dimension
        self.backend = check_backend(backend)
        self.batch_size = batch_size
        self.exported = False
        self.model_file: Path | None = None
        self._runner: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
        if backend == "torch":
            from sentence_transformers import SentenceTransformer  # ~7 s import: keep it lazy

            self.model: Any = SentenceTransformer(self.spec.path, device=device)
            self.model.max_seq_length = self.spec.max_seq_length
            loaded = self.model.get_embedding_dimension()
            if loaded != self.spec.dimension:
                raise ModelError(
                    f"RAG_EMBED_MODEL: {self.spec.name} loads with {loaded}-d vectors but its "
                    f"files declare {self.spec.dimension}"
                )
            if half:
                self.model.half()
            self.device = str(self.model.device)
            return
        if device not in (None, "cpu") or half:
            raise ValueError(f"backend {backend!r} runs on the CPU in float32 only")
        from rag_ingest.core.text.export import check_exportable, ensure_exported, require_runtime

        check_exportable(self.spec, backend)
        require_runtime(backend)
        self.model_file, self.exported = ensure_exported(backend, cache_dir, self.spec)
        self._runner = _load_runner(backend, self.model_file)
        self.device = "cpu"

    def encode(self, texts: list[str], prompt: str | None = None) -> np.ndarray:
        """Embed documents' texts with ``prompt`` (default: the model's document prompt);
        returns an ``(n, dimension)`` float32 array of unit vectors."""
        prompt = self.spec.document_prompt if prompt is None else prompt
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._runner is not None:
            return self._encode_exported([prompt + t for t in texts], self._runner)
        # sentence-transformers sorts by length internally, so padding stays small. The prompt
        # is passed even when empty: None would apply a model's default_prompt_name instead.
        vectors = self.model.encode(
            texts,
            prompt=prompt,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, texts: list[str]) -> np.ndarray:
        """Embed search queries, with the model's query prompt."""
        return self.encode(texts, prompt=self.spec.query_prompt)

    def _encode_exported(
        self, texts: list[str], runner: Callable[[dict[str, np.ndarray]], np.ndarray]
    ) -> np.ndarray:
        """What sentence-transformers does around the model (prompt prepended by the caller,
        truncation at its window, mean pooling over real tokens, L2 normalization), around an
        exported graph."""
        tokenizer = _truncating_tokenizer(self.spec.path, self.spec.max_seq_length)
        encodings = tokenizer.encode_batch(texts)
        # Longest first, like sentence-transformers: batches of similar length pad little.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = len(encodings[batch[0]].ids)
            feed = {name: np.zeros((len(batch), width), dtype=np.int64) for name in INPUT_NAMES}
            for row, i in enumerate(batch):
                enc = encodings[i]
                n = len(enc.ids)
                feed["input_ids"][row, :n] = enc.ids  # [PAD] is id 0
                feed["attention_mask"][row, :n] = 1
                feed["token_type_ids"][row, :n] = enc.type_ids
            hidden = runner(feed).astype(np.float32, copy=False)
            mask = feed["attention_mask"][:, :, None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[batch] = pooled / norms
        return out


@functools.cache
def _truncating_tokenizer(path: str, max_length: int) -> Tokenizer:
    """A model's tokenizer truncating at its window, as sentence-transformers does."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer


def shared_encoder(
    device: str | None = None,
    batch_size: int = 64,
    backend: str = DEFAULT_BACKEND,
    cache_dir: str | None = None,
    spec: ModelSpec | None = None,
) -> Encoder:
    """One encoder per process, model and settings: the model is loaded (or exported) once."""
    return _shared(device, batch_size, backend, cache_dir, spec or resolve_model())


@functools.cache
def _shared(
    device: str | None, batch_size: int, backend: str, cache_dir: str | None, spec: ModelSpec
) -> Encoder:
    return Encoder(
        device=device, batch_size=batch_size, backend=backend, cache_dir=cache_dir, spec=spec
    )
