"""The Modal app, offline: import, names, configuration, the class run in-process through
``.local()``, and the smoke entrypoint against a fake of the deployed class."""

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import modal
import modal.exception
import numpy as np
import pytest

from modal_functions import embedder
from modal_functions.embedder import SMOKE_SENTENCES, EmbeddingModel, smoke_report
from rag_ingest.core import modal_names as constants
from rag_ingest.resources import Embedder, LocalEmbedder
from rag_ingest.resources.modal import ModalEmbedder
from rag_ingest_tests.modal_fakes import install

REPO = Path(__file__).resolve().parent.parent
TEXTS = [
    "Volcanoes form where magma reaches the surface.",
    "A sourdough starter is a culture of wild yeast.",
    "x" * 3000,  # longer than the window: truncated identically on both paths
    "短い日本語の文。",
]


@pytest.fixture(scope="module")
def model() -> Iterator[Any]:
    # One instance, so @modal.enter loads the model once for the module's tests.
    yield EmbeddingModel(batch_size=3)


def _registered() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    # App.registered_* are deprecated (due 1.7) but are the only offline view of the layout.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = embedder.app
        return app.registered_classes, app.registered_functions, app.registered_entrypoints


def test_app_imports_offline_and_names_match_the_resource_defaults() -> None:
    assert isinstance(embedder.app, modal.App)
    assert embedder.app.name == constants.APP_NAME
    classes, _, _ = _registered()
    assert list(classes) == [constants.CLASS_NAME] == [EmbeddingModel.__name__]
    # The deployed class must not share its name with the Dagster resource base class.
    assert constants.CLASS_NAME == "EmbeddingModel" != Embedder.__name__
    resource = ModalEmbedder()
    assert (resource.deployed_app, resource.class_name) == (
        constants.APP_NAME,
        constants.CLASS_NAME,
    )
    assert resource.gpu == constants.GPU == "A10G"
    assert constants.DEPLOY_COMMAND == "modal deploy -m modal_functions.embedder"


def test_the_app_sets_no_retries_and_runs_on_the_configured_gpu() -> None:
    _, functions, _ = _registered()
    info = functions[f"{constants.CLASS_NAME}.*"].info()  # local: no lookup for a built class
    # The client owns retries (ModalEmbedder.max_batch_retries); retries here would multiply.
    assert info.max_retries is None
    assert info.gpus == [(constants.GPU, 1)]
    assert info.timeout == 600


def test_the_gpu_name_is_written_only_in_modal_names() -> None:
    sources = [
        *sorted((REPO / "modal_functions").glob("*.py")),
        REPO / "rag_ingest" / "resources" / "modal.py",
        REPO / "rag_ingest" / "core" / "modal_names.py",
    ]
    holders = [p.name for p in sources if f'"{constants.GPU}"' in p.read_text()]
    assert holders == ["modal_names.py"]


def test_modal_class_through_local_gives_the_local_embedders_vectors(model: Any) -> None:
    remote_vectors, seconds = model.embed.local(TEXTS)
    local_vectors, _ = LocalEmbedder().embed(TEXTS)
    assert remote_vectors.dtype == np.float32 and remote_vectors.shape == (4, 384)
    assert seconds > 0
    np.testing.assert_allclose(remote_vectors, local_vectors, atol=1e-5)
    assert np.allclose(np.linalg.norm(remote_vectors, axis=1), 1.0, atol=1e-5)


def test_the_smoke_entrypoint_is_what_modal_run_picks() -> None:
    from modal.cli.import_refs import import_and_filter, parse_import_ref

    _, _, entrypoints = _registered()
    assert list(entrypoints) == ["smoke"]
    assert entrypoints["smoke"] is embedder.smoke
    # Modal's own resolver for `modal run -m modal_functions.embedder` (no network involved).
    ref = parse_import_ref("modal_functions.embedder", use_module_mode=True)
    chosen, _, _ = import_and_filter(ref, base_cmd="modal run", accept_local_entrypoint=True)
    assert chosen is embedder.smoke


def test_the_smoke_check_passes_on_the_real_model(model: Any) -> None:
    vectors, seconds = model.embed.local(list(SMOKE_SENTENCES))
    lines, problems = smoke_report(vectors, seconds, seconds)
    assert problems == []
    assert lines[0] == "shape (3, 384) float32"
    assert lines[1].startswith("norms 1.0000 1.0000 1.0000")


def test_the_smoke_check_names_what_is_wrong() -> None:
    rng = np.random.default_rng(0)
    unit = rng.standard_normal((3, 384)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    swapped = unit[[0, 2, 1]].copy()
    swapped[2] = swapped[0]  # the "unrelated" sentence now equals the first one
    assert smoke_report(swapped, 0.1, 0.2)[1] == [
        "paraphrases are not closer than the unrelated sentence"
    ]
    assert smoke_report(unit * 2, 0.1, 0.2)[1] == ["vectors are not unit length"]
    assert smoke_report(unit[:2], 0.1, 0.2)[1] == ["expected shape (3, 384), got (2, 384)"]
    nan = unit.copy()
    nan[0, 0] = np.nan
    assert smoke_report(nan, 0.1, 0.2)[1] == ["vectors contain NaN or infinity"]


class _DeployedClass:
    """The looked-up class for the smoke entrypoint: ``.remote`` runs the model in-process."""

    def __init__(self, model: Any, error: BaseException | None = None) -> None:
        self.model = model
        self.error = error
        self.sent: list[list[str]] = []
        self.embed = self

    def __call__(self, **_params: Any) -> "_DeployedClass":
        return self

    def remote(self, texts: list[str]) -> Any:
        self.sent.append(texts)
        if self.error is not None:
            raise self.error
        return self.model.embed.local(texts)


def test_the_smoke_entrypoint_embeds_on_the_looked_up_class(
    model: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed = _DeployedClass(model)
    looked_up = install(monkeypatch, deployed)
    embedder.smoke()
    assert looked_up == [(constants.APP_NAME, constants.CLASS_NAME, None)]
    assert deployed.sent == [list(SMOKE_SENTENCES)]
    out = capsys.readouterr().out
    assert "shape (3, 384) float32" in out and "cosine: paraphrases" in out
    assert out.rstrip().endswith("smoke check passed")


def test_the_smoke_entrypoint_fails_loudly(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, _DeployedClass(model, modal.exception.NotFoundError("no app")))
    with pytest.raises(SystemExit, match="is not deployed: modal deploy -m modal_functions"):
        embedder.smoke()

    class Shuffled(_DeployedClass):
        def remote(self, texts: list[str]) -> Any:
            vectors, seconds = super().remote(texts)
            return vectors[[0, 2, 1]], seconds  # the unrelated sentence where the paraphrase was

    install(monkeypatch, Shuffled(model))
    with pytest.raises(SystemExit, match="smoke check failed: paraphrases are not closer"):
        embedder.smoke()
