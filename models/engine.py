"""Batched inference: a dynamic batcher in front of :class:`models.artifact.RiskModel`.

Callers :meth:`InferenceEngine.submit` one window (with its context) at a time, or many with
:meth:`InferenceEngine.predict_many`, from any thread; one inference thread takes requests off a queue and
runs them together: it waits for the first request, then up to ``max_delay_s`` for more, and runs as soon as
``preferred_batch`` are waiting (as Triton's dynamic batcher does). When requests are not backed up, one
waits at most ``max_delay_s`` plus one batch's compute. Larger submissions are cut into batches of
``preferred_batch``. The last request of a :meth:`InferenceEngine.predict_many` call ends the waiting at once
(its caller sends nothing more until it has the answers, so waiting for more would only delay them): the
batch takes what other callers have queued already, up to ``preferred_batch``, and runs.

Device and precision: CUDA with float16 autocast when a GPU is there (``device="auto"``), the CPU otherwise
with ``threads`` intra-op threads. On the CPU the engine can run the network through TorchScript
(``torchscript=True``; ``CARDIOWATCH_MODEL_TORCHSCRIPT`` in the worker); ``benchmarks/bench_model.py``
measures eager and TorchScript side by side. Preprocessing (resampling, filtering) always runs in float32.
The network never runs on an asyncio event loop: the worker calls the engine from its scoring process.

Swapping the model (:meth:`InferenceEngine.swap`) takes effect from the next batch; a batch in flight
finishes on the model it started with.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from models.artifact import RiskModel
from models.preprocess import EcgInput


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(slots=True)
class _Request:
    ecg: EcgInput | None
    context: Mapping[str, Any] | None
    last: bool = False  # the last of its caller's submission: the batch it joins waits for nothing more
    future: Future[dict[str, Any]] = field(default_factory=Future)


@dataclass(slots=True)
class EngineStats:
    """Counters of the engine (batches run, windows scored, largest batch, busy seconds)."""

    batches: int = 0
    windows: int = 0
    largest: int = 0
    busy_s: float = 0.0


class InferenceEngine:
    """Dynamic batcher and runner of one :class:`RiskModel` (see the module docstring)."""

    def __init__(
        self,
        model: RiskModel,
        preferred_batch: int = 64,
        max_delay_s: float = 0.01,
        device: str = "auto",
        threads: int | None = None,
        torchscript: bool = False,
    ) -> None:
        """Start the engine's inference thread."""
        if preferred_batch < 1 or max_delay_s < 0:
            raise ValueError("preferred_batch must be >= 1 and max_delay_s >= 0")
        self.preferred_batch = preferred_batch
        self.max_delay_s = max_delay_s
        self.device = pick_device(device)
        self.mixed_precision = self.device.type == "cuda"
        self.torchscript = torchscript and self.device.type == "cpu"
        if threads and self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.stats = EngineStats()
        self._model = self._prepare(model)
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def _prepare(self, model: RiskModel) -> tuple[RiskModel, Any]:
        model.to(self.device)
        model.network.eval()
        runner: Any = model.network
        if self.torchscript:
            with torch.inference_mode():
                example = model.inputs([EcgInput(("II",), np.zeros((1, 1000), np.float32), 100.0)], [None])
                with warnings.catch_warnings():  # TorchScript is deprecated upstream but still measured faster here
                    warnings.simplefilter("ignore", FutureWarning)
                    runner = torch.jit.trace(
                        model.network, example_kwarg_inputs=example, strict=False, check_trace=False
                    )
        return model, runner

    @property
    def model(self) -> RiskModel:
        """The model now serving."""
        return self._model[0]

    def swap(self, model: RiskModel) -> None:
        """Serve ``model`` from the next batch on."""
        self._model = self._prepare(model)

    def submit(
        self, ecg: EcgInput | None, context: Mapping[str, Any] | None = None, last: bool = False
    ) -> Future[dict[str, Any]]:
        """Queue one window; the future gives its task probabilities and the model version.

        ``last``: nothing more follows until this answer is in, so the batch it joins waits for nothing more
        (it still takes what is queued already).
        """
        request = _Request(ecg, context, last)
        self._queue.put(request)
        return request.future

    def predict_many(
        self, ecgs: Sequence[EcgInput | None], contexts: Sequence[Mapping[str, Any] | None] | None = None
    ) -> list[dict[str, Any]]:
        """Submit many windows and wait for all of them."""
        pairs = list(zip(ecgs, contexts or [None] * len(ecgs), strict=True))
        futures = [self.submit(e, c, last=i == len(pairs) - 1) for i, (e, c) in enumerate(pairs)]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Stop the inference thread after the requests already queued."""
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_delay_s
            stop, flush = False, first.last
            while len(batch) < self.preferred_batch:
                timeout = 0.0 if flush else deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                flush = flush or item.last
            self._infer(batch)
            if stop:
                return

    def _infer(self, batch: list[_Request]) -> None:
        model, runner = self._model
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                inputs = model.inputs([r.ecg for r in batch], [r.context for r in batch])  # in float32
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.mixed_precision):
                    logits = runner(**inputs)
            probs = model.probabilities(logits, inputs["context_mask"])
        except Exception as err:  # every waiter learns of the failure
            for r in batch:
                r.future.set_exception(err)
            return
        for i, r in enumerate(batch):
            r.future.set_result({name: v[i] for name, v in probs.items()} | {"model_version": model.version})
        self.stats.batches += 1
        self.stats.windows += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        self.stats.busy_s += time.perf_counter() - started
