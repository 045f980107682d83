"""The Modal app, offline: import, names, and the class run in-process through ``.local()``."""

import warnings

import numpy as np

from modal_functions import constants
from rag_ingest.embedders import LocalEmbedder
from rag_ingest.modal_embedder import ModalEmbedder

TEXTS = [
    "Volcanoes form where magma reaches the surface.",
    "A sourdough starter is a culture of wild yeast.",
    "x" * 3000,  # longer than the window: truncated identically on both paths
    "短い日本語の文。",
]


def test_app_imports_offline_and_names_match_the_resource_defaults() -> None:
    import modal

    from modal_functions import embedder

    assert isinstance(embedder.app, modal.App)
    assert embedder.app.name == constants.APP_NAME
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert list(embedder.app.registered_classes) == [constants.CLASS_NAME]
    resource = ModalEmbedder()
    assert (resource.app_name, resource.class_name) == (constants.APP_NAME, constants.CLASS_NAME)
    assert resource.gpu == constants.GPU == "A10G"
    assert constants.DEPLOY_COMMAND == "modal deploy -m modal_functions.embedder"


def test_modal_class_through_local_gives_the_local_embedders_vectors() -> None:
    from modal_functions.embedder import Embedder

    remote_vectors, seconds = Embedder(batch_size=3).embed.local(TEXTS)
    local_vectors, _ = LocalEmbedder().embed(TEXTS)
    assert remote_vectors.dtype == np.float32 and remote_vectors.shape == (4, 384)
    assert seconds > 0
    np.testing.assert_allclose(remote_vectors, local_vectors, atol=1e-5)
    assert np.allclose(np.linalg.norm(remote_vectors, axis=1), 1.0, atol=1e-5)
