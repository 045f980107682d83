"""The Modal implementation of ``Embedder``: a deployed GPU class, looked up by name.

All batches of a call go out in one ``.map`` (order kept); every output is checked for shape and
finite values; only the batches that failed are re-sent, each batch being sent at most
``1 + max_batch_retries`` times in all; GPU time is summed and priced.
"""

import logging
import os
import threading
import time
from typing import Any

import dagster as dg
import numpy as np
from pydantic import PrivateAttr, field_validator

from rag_ingest.core.cost import MODAL_GPU_PRICE_PER_SECOND, gpu_cost_usd
from rag_ingest.core.modal_names import CLASS_NAME, DEPLOY_COMMAND, GPU, app_name
from rag_ingest.core.text.encoder import vector_space
from rag_ingest.core.text.model import ModelSpec
from rag_ingest.resources.embedders import Embedder, EmbeddingError, EmbedStats

logger = dg.get_dagster_logger(__name__)

# The HTTP/2 header coder under Modal's gRPC client logs every header it encodes at DEBUG, the
# token secret among them: a process logging at DEBUG would write the token. Its INFO and above
# say nothing of headers.
_WIRE_LOGGERS = ("hpack", "h2")


def _quiet_wire_loggers() -> None:
    for name in _WIRE_LOGGERS:
        wire = logging.getLogger(name)
        if wire.getEffectiveLevel() < logging.INFO:
            wire.setLevel(logging.INFO)


class ModalSetupError(RuntimeError):
    """Modal cannot be used as configured (credentials, deployment, reachability)."""


def app_name_for(spec: ModelSpec) -> str:
    """The deployed app serving ``spec`` (``modal_functions.embedder`` names it the same)."""
    return app_name() if spec.is_default else app_name(spec.name, spec.app_key)


def modal_credentials_present() -> bool:
    """A token in the environment or in ``~/.modal.toml`` (what the Modal client reads)."""
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return True
    from modal.config import config

    return bool(config.get("token_id") and config.get("token_secret"))


class ModalEmbedder(Embedder):
    """Embeds on the deployed ``modal_functions.embedder`` app.

    Attributes:
        app_name, class_name: what ``modal deploy`` created; ``app_name`` empty (the default):
            the configured model's app, :func:`app_name_for` (see :attr:`deployed_app`).
        environment_name: Modal environment; None for the profile's default.
        batch_size: texts per Modal input. 256 chunks of ≤ 254 tokens are ~0.3 MB in and
            ~0.4 MB out as float32, well inside Modal's 2 MiB inline payload, and fill an A10G.
        max_batch_retries: extra attempts for a batch that raised, was lost or came back
            malformed. This is the only retry layer (the app sets no ``retries=``), so a batch
            is sent at most ``1 + max_batch_retries`` times; Modal's own restart of an input
            whose container was preempted comes on top and is not a failure seen here.
        retry_delay_seconds: pause before the first retry round, doubled for each later one.
        lookup_timeout_seconds: bound on reaching Modal before any work starts.
        gpu: GPU type, for pricing; price_per_second overrides the price table.
    """

    app_name: str = ""
    class_name: str = CLASS_NAME
    environment_name: str | None = None
    batch_size: int = 256
    max_batch_retries: int = 2
    retry_delay_seconds: float = 1.0
    lookup_timeout_seconds: float = 20.0
    gpu: str = GPU
    price_per_second: float | None = None

    _remote: Any = PrivateAttr(default=None)

    @field_validator("max_batch_retries", "retry_delay_seconds")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        # Fails at resource construction (definitions load), not at the first embed of a run.
        if value < 0:
            raise ValueError(f"must be ≥ 0, got {value}")
        return value

    @property
    def deployed_app(self) -> str:
        return self.app_name or app_name_for(self.spec)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Fail before any work: missing credentials, app not deployed, Modal unreachable.
        _quiet_wire_loggers()
        self._remote = None
        self._lookup()

    @property
    def vector_space(self) -> str:
        # The deployed class runs sentence-transformers (torch) in float32 (half=False).
        return vector_space("torch")

    def _price(self) -> float:
        if self.price_per_second is not None:
            return self.price_per_second
        return gpu_cost_usd(1.0, self.gpu, MODAL_GPU_PRICE_PER_SECOND)

    def _lookup(self) -> Any:
        """The deployed class, hydrated within ``lookup_timeout_seconds``, or a clear error.

        The one initialisation path: ``setup_for_execution`` calls it up front; ``embed`` calls it
        too, which reuses that result, or looks up here when the resource was built directly.
        """
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
            self.deployed_app, self.class_name, environment_name=self.environment_name
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
                f"{self.deployed_app}/{self.class_name} (network or token?)"
            )
        error = outcome[0]
        if isinstance(error, modal.exception.NotFoundError):
            where = f" in environment {self.environment_name!r}" if self.environment_name else ""
            model = "" if self.spec.is_default else f"RAG_EMBED_MODEL={self.model} "
            raise ModalSetupError(
                f"Modal app {self.deployed_app!r} class {self.class_name!r} is not deployed"
                f"{where}: deploy it with: {model}{DEPLOY_COMMAND}"
            ) from error
        if isinstance(error, modal.exception.AuthError):
            raise ModalSetupError(f"Modal rejected the credentials: {error}") from error
        if error is not None:
            raise ModalSetupError(f"Modal lookup failed: {error}") from error
        self._remote = cls(batch_size=self.batch_size)
        return self._remote

    def _outcome(self, output: Any, expected_rows: int) -> tuple[np.ndarray, float] | str:
        """The vectors and GPU seconds of one ``.map`` output, or why it cannot be used."""
        if isinstance(output, BaseException):
            return f"{type(output).__name__}: {output}"
        if not (isinstance(output, tuple) and len(output) == 2):
            return f"expected (vectors, seconds), got {type(output).__name__}"
        try:
            vectors = np.asarray(output[0], dtype=np.float32)
            seconds = float(output[1])
        except (TypeError, ValueError) as exc:
            return f"unreadable output: {exc}"
        if vectors.shape != (expected_rows, self.dimension):
            return (
                f"expected vectors of shape ({expected_rows}, {self.dimension}), "
                f"got {vectors.shape}"
            )
        if not np.isfinite(vectors).all():
            return "vectors contain NaN or infinity"
        return vectors, seconds

    def _map(self, remote: Any, batches: list[list[str]]) -> list[Any]:
        """One ``.map`` over ``batches``: per batch, in order, its output or the exception."""
        outputs: list[Any] = []
        try:
            # No client-side in-flight cap: .map itself sends inputs in chunks and keeps at most
            # the server's max_inputs_outstanding (1000 by default) unfinished. Nor would a cap
            # bound memory: all texts are here and all vectors are returned; callers bound that
            # by passing windows of texts (assets.EMBED_WINDOW_TEXTS).
            for output in remote.embed.map(batches, order_outputs=True, return_exceptions=True):
                outputs.append(output)
        except Exception as exc:
            # The call itself broke (transport, auth): the batches without an output yet failed.
            outputs.extend([exc] * (len(batches) - len(outputs)))
        return outputs

    def embed_query(self, queries: list[str]) -> np.ndarray:
        """One call of the deployed class's ``embed_query`` (queries are few: no fan-out)."""
        if not queries:
            return np.zeros((0, self.dimension), np.float32)
        vectors = np.asarray(self._lookup().embed_query.remote(queries), dtype=np.float32)
        if vectors.shape != (len(queries), self.dimension):
            raise EmbeddingError(
                f"expected query vectors of shape ({len(queries)}, {self.dimension}), got "
                f"{vectors.shape}",
                [(0, len(queries))],
            )
        return vectors

    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        started = time.perf_counter()
        if not texts:
            return np.zeros((0, self.dimension), np.float32), EmbedStats("modal", 0, 0, 0.0)
        remote = self._lookup()
        size = self.batch_size
        spans = [(i, min(i + size, len(texts))) for i in range(0, len(texts), size)]
        results: list[np.ndarray | None] = [None] * len(spans)
        errors: dict[int, str] = {}
        gpu_seconds = 0.0
        attempts = 1 + self.max_batch_retries
        # All batches go out in one .map; each later round re-sends only the batches that failed,
        # so a batch is sent at most `attempts` times (the app adds no retries of its own).
        pending = list(range(len(spans)))
        for attempt in range(attempts):
            if attempt:
                logger.warning(
                    f"retrying {len(pending)} of {len(spans)} Modal batches "
                    f"(attempt {attempt + 1} of {attempts}); first error: {errors[pending[0]]}"
                )
                time.sleep(self.retry_delay_seconds * 2 ** (attempt - 1))
            outputs = self._map(remote, [texts[spans[i][0] : spans[i][1]] for i in pending])
            failed: list[int] = []
            for i, output in zip(pending, outputs, strict=True):
                outcome = self._outcome(output, spans[i][1] - spans[i][0])
                if isinstance(outcome, str):
                    errors[i] = outcome
                    failed.append(i)
                    continue
                results[i], seconds = outcome
                gpu_seconds += seconds
            pending = failed
            if not pending:
                break
        if pending:
            raise EmbeddingError(
                f"{len(pending)} of {len(spans)} Modal batches failed after {attempts} attempts; "
                f"first error: {errors[pending[0]]}",
                [spans[i] for i in pending],
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
