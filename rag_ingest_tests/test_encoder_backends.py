"""The exported CPU backends of the encoder against sentence-transformers (torch fp32).

Real packaged model; every export is made once per session into a temporary cache. A backend
whose runtime is not installed (onnxruntime, openvino: the ``cpu`` extra) is skipped, not failed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from rag_ingest.core.text import export as export_module
from rag_ingest.core.text.encoder import BACKENDS, DIMENSION, Encoder
from rag_ingest.core.text.export import RUNTIME_MODULES, ensure_exported, export_dir

TEXTS = [
    "how do bees tell each other where the flowers are",
    "Glaciers carve U-shaped valleys as they advance and leave moraines when they retreat. " * 12,
    "A sourdough starter is a culture of wild yeast and lactic acid bacteria.",
    "x",
    "Roman aqueducts carried water across valleys on arcades of stone, at a gradient so gentle "
    "that the fall over a kilometre was often less than a metre.",
]
# fp32 exports compute what torch does up to float rounding.
MIN_COSINE = {"onnx": 0.9999, "openvino": 0.9999}
EXPORTED = [b for b in BACKENDS if b != "torch"]


def _require_runtime(backend: str) -> None:
    missing = [m for m in RUNTIME_MODULES[backend] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"backend {backend!r} needs {', '.join(missing)} installed")


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedder-cache")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return Encoder("cpu").encode(TEXTS)


@pytest.fixture(scope="module")
def first_loads() -> dict[str, Encoder]:
    """Each backend's first load, which exports it into the fresh session cache."""
    return {}


def _first_load(backend: str, cache: Path, loads: dict[str, Encoder]) -> Encoder:
    _require_runtime(backend)
    if backend not in loads:
        loads[backend] = Encoder("cpu", batch_size=2, backend=backend, cache_dir=cache)
    return loads[backend]


@pytest.mark.parametrize("backend", EXPORTED)
def test_vectors_agree_with_torch(
    backend: str, export_cache: Path, first_loads: dict[str, Encoder], reference: np.ndarray
) -> None:
    encoder = _first_load(backend, export_cache, first_loads)
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= MIN_COSINE[backend], cosines
    # batch_size=2 splits TEXTS over batches of different padding; one text alone must agree.
    alone = encoder.encode([TEXTS[1]])[0]
    assert float(alone @ vectors[1]) > 0.9999
    assert encoder.encode([]).shape == (0, DIMENSION)


@pytest.mark.parametrize("backend", EXPORTED)
def test_export_is_reused(
    backend: str, export_cache: Path, first_loads: dict[str, Encoder]
) -> None:
    first = _first_load(backend, export_cache, first_loads)
    assert first.exported and first.model_file is not None
    before = {p: p.stat().st_mtime_ns for p in export_dir(backend, export_cache).iterdir()}
    second = Encoder("cpu", backend=backend, cache_dir=export_cache)
    assert not second.exported
    assert second.model_file == first.model_file
    after = {p: p.stat().st_mtime_ns for p in export_dir(backend, export_cache).iterdir()}
    assert after == before
    # Nothing but the finished export is left in the cache (no temporary folders).
    assert [
        p.name for p in export_dir(backend, export_cache).parent.iterdir() if p.name[0] == "."
    ] == []


def test_losing_an_export_race_uses_the_winners_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = export_dir("onnx", tmp_path)

    def build_while_another_process_finishes(work: Path, out: Path, spec: object) -> None:
        out.write_bytes(b"ours")
        final.mkdir(parents=True)
        (final / "model.onnx").write_bytes(b"theirs")
        (final / "manifest.json").write_text("{}")

    monkeypatch.setattr(export_module, "_build_onnx", build_while_another_process_finishes)
    monkeypatch.setattr(export_module, "_tool_versions", lambda backend: {})
    model_file, exported = ensure_exported("onnx", tmp_path)
    assert (model_file, exported) == (final / "model.onnx", False)
    assert model_file.read_bytes() == b"theirs"
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]


def test_unknown_backend_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="unknown embedding backend 'tensorrt'; allowed: torch, onnx"
    ):
        Encoder(backend="tensorrt", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="CPU"):
        Encoder("cuda", backend="onnx", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_local_embedder_backend_field(export_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag_ingest.resources import LocalEmbedder

    with pytest.raises(Exception, match="allowed: torch, onnx, openvino"):
        LocalEmbedder(backend="onnx-fp16")
    assert LocalEmbedder().backend == "torch"

    _require_runtime("onnx")
    monkeypatch.setenv("RAG_EMBED_CACHE_DIR", str(export_cache))
    vectors, stats = LocalEmbedder(backend="onnx", batch_size=4).embed(TEXTS)
    assert vectors.shape == (len(TEXTS), DIMENSION)
    assert stats.backend == "local/onnx" and stats.texts == len(TEXTS) and stats.batches == 2


def test_removed_backends_are_unknown() -> None:
    assert BACKENDS == ("torch", "onnx", "openvino")
    for backend in ("onnx-int8", "openvino-int8"):
        with pytest.raises(ValueError, match=r"allowed: torch, onnx, openvino$"):
            Encoder(backend=backend)


@pytest.mark.parametrize("backend", EXPORTED)
def test_a_missing_runtime_is_a_one_line_refusal(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = RUNTIME_MODULES[backend][0]
    monkeypatch.setitem(sys.modules, runtime, None)  # `import <runtime>` now raises ImportError
    with pytest.raises(RuntimeError) as refused:
        Encoder("cpu", backend=backend, cache_dir=tmp_path)
    message = str(refused.value)
    assert "\n" not in message
    assert f"RAG_EMBED_BACKEND={backend} needs {runtime}," in message
    assert "pip install 'rag-ingest[cpu]'" in message
    assert list(tmp_path.iterdir()) == []  # refused before exporting anything
