"""The Modal implementation of ``Embedder``: a deployed GPU class, looked up by name.

Batches of texts fan out with ``.map`` (bounded in-flight, order kept), every result is checked
for shape, failed batches are retried a bounded number of times, and GPU time is priced.
"""

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import dagster as dg
import numpy as np
from pydantic import PrivateAttr

from modal_functions.constants import APP_NAME, CLASS_NAME, DEPLOY_COMMAND, GPU
from rag_ingest.core.cost import MODAL_GPU_PRICE_PER_SECOND, gpu_cost_usd
from rag_ingest.embedders import Embedder, EmbedStats


class ModalSetupError(RuntimeError):
    """Modal cannot be used as configured (credentials, deployment, reachability)."""


class EmbeddingError(RuntimeError):
    """Some batches failed for good; ``failed_spans`` are their (start, end) text indices."""

    def __init__(self, message: str, failed_spans: Sequence[tuple[int, int]]) -> None:
        super().__init__(message)
        self.failed_spans = list(failed_spans)


def modal_credentials_present() -> bool:
    """A token in the environment or in ``~/.modal.toml`` (what the Modal client reads)."""
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return True
    from modal.config import config

    return bool(config.get("token_id") and config.get("token_secret"))


class ModalEmbedder(Embedder):
    """Embeds on the deployed ``modal_functions.embedder`` app.

    Attributes:
        app_name, class_name: what ``modal deploy`` created (defaults match the app module).
        environment_name: Modal environment; None for the profile's default.
        batch_size: texts per Modal input. 256 chunks of ≤ 254 tokens are ~0.3 MB in and
            ~0.4 MB out as float32, well inside Modal's 2 MiB inline payload, and fill an A10G.
        max_in_flight: batches submitted per ``.map`` call.
        max_batch_retries: extra attempts for a batch that raised or came back malformed.
        lookup_timeout_seconds: bound on reaching Modal before any work starts.
        gpu: GPU type, for pricing; price_per_second overrides the price table.
    """

    app_name: str = APP_NAME
    class_name: str = CLASS_NAME
    environment_name: str | None = None
    batch_size: int = 256
    max_in_flight: int = 64
    max_batch_retries: int = 2
    lookup_timeout_seconds: float = 20.0
    gpu: str = GPU
    price_per_second: float | None = None

    _remote: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Fail before any work: missing credentials, app not deployed, Modal unreachable.
        self._remote = None
        self._lookup()

    def _price(self) -> float:
        if self.price_per_second is not None:
            return self.price_per_second
        return gpu_cost_usd(1.0, self.gpu, MODAL_GPU_PRICE_PER_SECOND)

    def _lookup(self) -> Any:
        """The deployed class, hydrated within ``lookup_timeout_seconds``, or a clear error."""
        if self._remote is not None:
            return self._remote
        if not modal_credentials_present():
            raise ModalSetupError(
                "no Modal credentials: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or run "
                "`modal token set`) to use RAG_EMBEDDER=modal"
            )
        import modal
        import modal.exception

        cls = modal.Cls.from_name(
            self.app_name, self.class_name, environment_name=self.environment_name
        )
        outcome: list[BaseException | None] = []

        def hydrate() -> None:
            try:
                cls.hydrate()
                outcome.append(None)
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append(exc)

        # A bad token makes the client retry for about a minute; bound the wait once, up front.
        worker = threading.Thread(target=hydrate, daemon=True, name="modal-lookup")
        worker.start()
        worker.join(self.lookup_timeout_seconds)
        if not outcome:
            raise ModalSetupError(
                f"could not reach Modal within {self.lookup_timeout_seconds:.0f}s looking up "
                f"{self.app_name}/{self.class_name} (network or token?)"
            )
        error = outcome[0]
        if isinstance(error, modal.exception.NotFoundError):
            where = f" in environment {self.environment_name!r}" if self.environment_name else ""
            raise ModalSetupError(
                f"Modal app {self.app_name!r} class {self.class_name!r} is not deployed{where}: "
                f"deploy it with: {DEPLOY_COMMAND}"
            ) from error
        if isinstance(error, modal.exception.AuthError):
            raise ModalSetupError(f"Modal rejected the credentials: {error}") from error
        if error is not None:
            raise ModalSetupError(f"Modal lookup failed: {error}") from error
        self._remote = cls(batch_size=self.batch_size)
        return self._remote

    def _check(self, output: Any, expected_rows: int) -> tuple[np.ndarray, float]:
        if not (isinstance(output, tuple) and len(output) == 2):
            raise ValueError(f"expected (vectors, seconds), got {type(output).__name__}")
        vectors = np.asarray(output[0], dtype=np.float32)
        if vectors.shape != (expected_rows, self.dimension):
            raise ValueError(
                f"expected vectors of shape ({expected_rows}, {self.dimension}), "
                f"got {vectors.shape}"
            )
        if not np.isfinite(vectors).all():
            raise ValueError("vectors contain NaN or infinity")
        return vectors, float(output[1])

    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        started = time.perf_counter()
        if not texts:
            return np.zeros((0, self.dimension), np.float32), EmbedStats("modal", 0, 0, 0.0)
        remote = self._lookup()
        spans = [
            (i, min(i + self.batch_size, len(texts))) for i in range(0, len(texts), self.batch_size)
        ]
        results: list[np.ndarray | None] = [None] * len(spans)
        errors: dict[int, str] = {}
        gpu_seconds = 0.0
        pending = list(range(len(spans)))
        for _attempt in range(1 + self.max_batch_retries):
            for g in range(0, len(pending), self.max_in_flight):
                group = pending[g : g + self.max_in_flight]
                inputs = [texts[spans[i][0] : spans[i][1]] for i in group]
                try:
                    outputs = list(
                        remote.embed.map(inputs, order_outputs=True, return_exceptions=True)
                    )
                except Exception as exc:  # the whole call failed: every batch of it retries
                    outputs = [exc] * len(group)
                for i, output in zip(group, outputs, strict=True):
                    try:
                        if isinstance(output, BaseException):
                            raise output
                        vectors, seconds = self._check(output, spans[i][1] - spans[i][0])
                    except Exception as exc:
                        errors[i] = f"{type(exc).__name__}: {exc}"
                        continue
                    results[i] = vectors
                    gpu_seconds += seconds
                    errors.pop(i, None)
            pending = [i for i in pending if results[i] is None]
            if not pending:
                break
        if pending:
            failed = [spans[i] for i in pending]
            raise EmbeddingError(
                f"{len(pending)} of {len(spans)} Modal batches failed after "
                f"{1 + self.max_batch_retries} attempts; first error: {errors[pending[0]]}",
                failed,
            )
        vectors = np.concatenate([r for r in results if r is not None])
        stats = EmbedStats(
            backend="modal",
            texts=len(texts),
            batches=len(spans),
            seconds=time.perf_counter() - started,
            gpu_seconds=gpu_seconds,
            cost_usd=gpu_seconds * self._price(),
        )
        return vectors, stats
