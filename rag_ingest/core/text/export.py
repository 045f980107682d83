"""Exported CPU models for the ``onnx`` and ``openvino`` embedding backends.

The model's weights are traced once into ONNX (and, for OpenVINO, converted to IR) into a cache
folder per model and revision, and reused afterwards. The recipe (BERT inputs, ONNX Runtime's
BERT fusion, mean pooling and normalization in numpy) fits BERT models with plain mean pooling;
:func:`check_exportable` refuses any other model with one line naming ``RAG_EMBED_BACKEND``.
The runtimes are the optional ``cpu`` extra (``pip install 'rag-ingest[cpu]'``);
:func:`require_runtime` refuses a backend whose runtime is missing with one line naming
``RAG_EMBED_BACKEND`` and the extra.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from rag_ingest.core.text.model import (
    INPUT_NAMES,
    MODEL_PACKAGE,
    MODEL_PACKAGE_VERSION,
    ModelError,
    ModelSpec,
    resolve_model,
)

# Bump when an export recipe changes: old exports then sit in another folder and are not reused.
EXPORT_FORMAT = 1
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


def check_exportable(spec: ModelSpec, backend: str) -> None:
    """Raise a one-line :class:`ModelError` if ``backend``'s export recipe cannot run ``spec``:
    it traces BERT's three inputs and pools by mean outside the graph, nothing else. ``torch``
    runs any model."""
    why = ""
    if backend == "torch":
        return
    if spec.model_type != "bert":
        why = f"is a {spec.model_type or 'non-BERT'} model"
    elif not spec.plain or spec.pooling != "mean":
        why = f"pools by {spec.pooling} or has modules beyond Transformer, Pooling and Normalize"
    elif spec.num_heads <= 0 or spec.hidden_size <= 0:
        why = "declares no attention heads or hidden size"
    if why:
        raise ModelError(
            f"RAG_EMBED_BACKEND={backend} runs BERT models with mean pooling only, and "
            f"{spec.name} {why}: set RAG_EMBED_BACKEND=torch"
        )


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


def _export_onnx_fp32(dst: Path, spec: ModelSpec) -> None:
    """Trace the model's BERT into ``dst`` (ONNX, opset 17) returning ``last_hidden_state``.

    Pooling and normalization stay outside the graph, in numpy, so every runtime shares them.
    """
    import torch
    from transformers import AutoModel

    # Eager attention traces to plain MatMul/Softmax, which ONNX Runtime's BERT fusion recognizes
    # and OpenVINO reads; the SDPA kernel would not fuse.
    bert: Any = AutoModel.from_pretrained(spec.path, attn_implementation="eager").eval()

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


def _build_onnx(work: Path, out: Path, spec: ModelSpec) -> None:
    """ONNX Runtime graph with fused BERT ops, float32."""
    from onnxruntime.transformers.optimizer import optimize_model

    raw = work / "raw.onnx"
    _export_onnx_fp32(raw, spec)
    # The same fusions as sentence-transformers' export_optimized_onnx_model (Attention,
    # SkipLayerNorm, BiasGelu, EmbedLayerNorm), done offline so every load skips them.
    fused = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=spec.num_heads,
        hidden_size=spec.hidden_size,
        opt_level=0,
    )
    fused.save_model_to_file(str(out))


def _build_openvino(work: Path, out: Path, spec: ModelSpec) -> None:
    """OpenVINO IR, float32."""
    import openvino as ov

    raw = work / "raw.onnx"
    _export_onnx_fp32(raw, spec)
    model = ov.Core().read_model(str(raw))
    # fp16 storage would be a silent quantization of the fp32 backend.
    ov.save_model(model, str(out), compress_to_fp16=False)


def _tool_versions(backend: str) -> dict[str, str]:
    from importlib.metadata import version

    return {tool: version(tool) for tool in ("torch", "transformers", *RUNTIME_MODULES[backend])}


def export_dir(
    backend: str, cache_dir: Path | str | None = None, spec: ModelSpec | None = None
) -> Path:
    """The folder holding ``backend``'s export of ``spec`` (default model when None; the
    folder may not exist yet)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    spec = spec or resolve_model()
    if spec.is_default:
        model_key = f"{MODEL_PACKAGE}-{MODEL_PACKAGE_VERSION}"
    else:
        model_key = "model-" + hashlib.sha256(spec.label.encode()).hexdigest()[:16]
    return root / model_key / f"{_exported(backend)}-v{EXPORT_FORMAT}"


def ensure_exported(
    backend: str, cache_dir: Path | str | None = None, spec: ModelSpec | None = None
) -> tuple[Path, bool]:
    """Export ``backend``'s model from its weights once; reuse it afterwards.

    The export is built in a temporary sibling folder and renamed into place, so a reader never
    sees a half-written model; when processes race, one rename wins and the others discard theirs.

    Args:
        backend: an exported backend (a key of :data:`RUNTIME_MODULES`).
        cache_dir: root of the export cache; :func:`default_cache_dir` when None.
        spec: the model (checked with :func:`check_exportable`); the default model when None.

    Returns:
        The model file, and whether this call exported it (False: an existing export was reused).
    """
    spec = spec or resolve_model()
    check_exportable(spec, backend)
    final = export_dir(backend, cache_dir, spec)
    model_file = final / _MODEL_FILE[backend]
    if (final / "manifest.json").exists():
        return model_file, False
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        staged = work / "export"
        staged.mkdir()
        build = _build_onnx if backend == "onnx" else _build_openvino
        build(work, staged / _MODEL_FILE[backend], spec)
        manifest = {
            "model": spec.name,
            "revision": spec.revision,
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
