"""Exported CPU models for the ``onnx`` and ``openvino`` embedding backends.

The packaged all-MiniLM-L6-v2 weights are traced once into ONNX (and, for OpenVINO, converted to
IR) into a cache folder, and reused afterwards. The runtimes are the optional ``cpu`` extra
(``pip install 'rag-ingest[cpu]'``); :func:`require_runtime` refuses a backend whose runtime is
missing with one line naming ``RAG_EMBED_BACKEND`` and the extra.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from rag_ingest.core.text.model import (
    DIMENSION,
    INPUT_NAMES,
    MODEL_NAME,
    MODEL_PACKAGE,
    MODEL_PACKAGE_VERSION,
    model_dir,
)

# Bump when an export recipe changes: old exports then sit in another folder and are not reused.
EXPORT_FORMAT = 1
# all-MiniLM-L6-v2: BERT, 6 layers, 12 heads of 32 dims; ONNX Runtime's fusion pass needs these.
_NUM_HEADS = 12
# The pyproject extra that installs every exported backend's runtime.
EXTRA = "cpu"
# What each exported backend imports: the export (onnx) and the runtime that runs it.
RUNTIME_MODULES: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "onnx"),
}
_MODEL_FILE = {"onnx": "model.onnx", "openvino": "model.xml"}


def _exported(backend: str) -> str:
    """Return ``backend`` if it runs an export, else raise a ValueError."""
    if backend == "torch":
        raise ValueError("the torch backend loads the packaged weights; nothing to export")
    if backend not in RUNTIME_MODULES:
        raise ValueError(f"{backend!r} is not an exported backend: {', '.join(RUNTIME_MODULES)}")
    return backend


def require_runtime(backend: str) -> None:
    """Raise a one-line RuntimeError if ``backend``'s runtime modules cannot be imported."""
    missing: list[str] = []
    for module in RUNTIME_MODULES[_exported(backend)]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise RuntimeError(
            f"RAG_EMBED_BACKEND={backend} needs {', '.join(missing)}, which is not installed: "
            f"install the {EXTRA!r} extra (pip install 'rag-ingest[{EXTRA}]') "
            f"or set RAG_EMBED_BACKEND=torch"
        )


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

    example = tuple(torch.ones(2, 16, dtype=torch.long) for _ in INPUT_NAMES)
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated but needs no onnxscript and traces BERT exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(bert),
            example,
            str(dst),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes={name: axes for name in (*INPUT_NAMES, "last_hidden_state")},
            opset_version=17,
        )


def _build_onnx(work: Path, out: Path) -> None:
    """ONNX Runtime graph with fused BERT ops, float32."""
    from onnxruntime.transformers.optimizer import optimize_model

    raw = work / "raw.onnx"
    _export_onnx_fp32(raw)
    # The same fusions as sentence-transformers' export_optimized_onnx_model (Attention,
    # SkipLayerNorm, BiasGelu, EmbedLayerNorm), done offline so every load skips them.
    fused = optimize_model(
        str(raw), model_type="bert", num_heads=_NUM_HEADS, hidden_size=DIMENSION, opt_level=0
    )
    fused.save_model_to_file(str(out))


def _build_openvino(work: Path, out: Path) -> None:
    """OpenVINO IR, float32."""
    import openvino as ov

    raw = work / "raw.onnx"
    _export_onnx_fp32(raw)
    model = ov.Core().read_model(str(raw))
    # fp16 storage would be a silent quantization of the fp32 backend.
    ov.save_model(model, str(out), compress_to_fp16=False)


def _tool_versions(backend: str) -> dict[str, str]:
    from importlib.metadata import version

    return {tool: version(tool) for tool in ("torch", "transformers", *RUNTIME_MODULES[backend])}


def export_dir(backend: str, cache_dir: Path | str | None = None) -> Path:
    """The folder holding ``backend``'s export (it may not exist yet)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    model_key = f"{MODEL_PACKAGE}-{MODEL_PACKAGE_VERSION}"
    return root / model_key / f"{_exported(backend)}-v{EXPORT_FORMAT}"


def ensure_exported(backend: str, cache_dir: Path | str | None = None) -> tuple[Path, bool]:
    """Export ``backend``'s model from the packaged weights once; reuse it afterwards.

    The export is built in a temporary sibling folder and renamed into place, so a reader never
    sees a half-written model; when processes race, one rename wins and the others discard theirs.

    Args:
        backend: an exported backend (a key of :data:`RUNTIME_MODULES`).
        cache_dir: root of the export cache; :func:`default_cache_dir` when None.

    Returns:
        The model file, and whether this call exported it (False: an existing export was reused).
    """
    final = export_dir(backend, cache_dir)
    model_file = final / _MODEL_FILE[backend]
    if (final / "manifest.json").exists():
        return model_file, False
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        staged = work / "export"
        staged.mkdir()
        build = _build_onnx if backend == "onnx" else _build_openvino
        build(work, staged / _MODEL_FILE[backend])
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
