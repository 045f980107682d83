"""A fake of the looked-up Modal class, for testing ``ModalEmbedder`` without Modal's cloud.

``FakeModal`` stands in for ``modal.Cls.from_name(...)``: it hydrates, instantiates, and answers
``.embed.map`` like Modal's with ``order_outputs=True, return_exceptions=True`` (one output or
exception per input, in input order, streamed). It records every ``.map`` call and every run of
every batch, so tests can count calls, inputs and attempts.
"""

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import modal
import modal.exception
import numpy as np
import pytest

# (batch texts, how many times this batch has run, this one included) -> fail this run?
FailRule = Callable[[list[str], int], bool]


def fake_vector(text: str) -> np.ndarray:
    """A unit vector determined by ``text``: what the fake returns for it."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    vector = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return vector / np.linalg.norm(vector)


class FakeModal:
    """The looked-up class; every failure is an exception *output*, as Modal hands them back.

    Args:
        fail: which runs of which batches fail with ``RemoteError`` (see :data:`FailRule`).
        fail_first: the first ``n`` inputs sent, over all calls, fail.
        fail_always: every run fails.
        bad_shape: every output has 12 columns instead of 384.
        nan_first_run: a batch's first run returns NaN vectors.
        break_after: the first ``.map`` call itself raises ``ConnectionError`` after yielding
            this many outputs (a broken stream, not a per-input failure).
        hydrate_error, hydrate_delay: how the lookup fails or stalls.
    """

    def __init__(
        self,
        fail: FailRule | None = None,
        fail_first: int = 0,
        fail_always: bool = False,
        bad_shape: bool = False,
        nan_first_run: bool = False,
        break_after: int | None = None,
        hydrate_error: BaseException | None = None,
        hydrate_delay: float = 0.0,
        gpu_seconds: float = 0.25,
    ) -> None:
        self.fail = fail
        self.fail_first = fail_first
        self.fail_always = fail_always
        self.bad_shape = bad_shape
        self.nan_first_run = nan_first_run
        self.break_after = break_after
        self.hydrate_error = hydrate_error
        self.hydrate_delay = hydrate_delay
        self.gpu_seconds = gpu_seconds
        self.hydrations = 0
        self.params: list[dict[str, Any]] = []
        # One entry per .map call: the batches it carried, in order.
        self.map_calls: list[list[list[str]]] = []
        # Runs per batch, keyed by the batch's texts.
        self.runs: Counter[tuple[str, ...]] = Counter()
        self.embed = self

    @property
    def inputs_sent(self) -> int:
        return sum(len(call) for call in self.map_calls)

    def hydrate(self) -> "FakeModal":
        self.hydrations += 1
        if self.hydrate_delay:
            time.sleep(self.hydrate_delay)
        if self.hydrate_error:
            raise self.hydrate_error
        return self

    def __call__(self, **params: Any) -> "FakeModal":
        self.params.append(params)
        return self

    def map(
        self,
        inputs: Iterable[list[str]],
        order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> Iterator[Any]:
        assert order_outputs and return_exceptions
        batches = [list(batch) for batch in inputs]
        self.map_calls.append(batches)
        call = len(self.map_calls)
        return self._outputs(batches, call)

    def _outputs(self, batches: list[list[str]], call: int) -> Iterator[Any]:
        for n, batch in enumerate(batches):
            if call == 1 and self.break_after is not None and n == self.break_after:
                raise ConnectionError("stream reset")
            yield self._run(batch)

    def _run(self, batch: list[str]) -> Any:
        key = tuple(batch)
        self.runs[key] += 1
        if (
            self.fail_always
            or self.runs.total() <= self.fail_first
            or (self.fail is not None and self.fail(batch, self.runs[key]))
        ):
            return modal.exception.RemoteError("container lost")
        if self.bad_shape:
            return np.zeros((len(batch), 12), np.float32), 0.1
        vectors = np.stack([fake_vector(t) for t in batch])
        if self.nan_first_run and self.runs[key] == 1:
            vectors[0, 0] = np.nan
        return vectors, self.gpu_seconds


def install(monkeypatch: pytest.MonkeyPatch, fake: Any) -> list[tuple[Any, ...]]:
    """Make ``modal.Cls.from_name`` return ``fake``; returns the lookups made, as
    ``(app_name, class_name, environment_name)``."""
    looked_up: list[tuple[Any, ...]] = []

    def from_name(app: str, name: str, **kwargs: Any) -> Any:
        looked_up.append((app, name, kwargs.get("environment_name")))
        return fake

    monkeypatch.setattr(modal.Cls, "from_name", from_name)
    return looked_up


def set_modal_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A syntactically valid token in the environment (it is never sent anywhere)."""
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
