"""Encoding with several worker processes: one copy of the model per CPU group or per GPU.

:class:`ProcessPoolEncoder` is an :class:`~embtune.encoders.base.Encoder` like any other, so the vector cache, the
streamed and resumable ``encode_file`` and the progress bar work unchanged; only the model work moves to the workers.
Each call's items are cut into batches that the workers take as they free up, and the vectors come back in order.

Written on the standard library's ``ProcessPoolExecutor`` rather than sentence-transformers' multi-process pool because
it runs every backend embtune has (torch, ONNX Runtime, TF Hub, image backbones) the same way. On CPU the cores are
shared out (``cores // processes`` threads each); on GPUs worker i takes ``cuda:i`` (round robin).

Workers are started with ``spawn`` (a forked copy of a loaded torch or CUDA state is unsafe), so a Python script that
uses this must keep its top-level code under ``if __name__ == "__main__":``; the CLI needs nothing.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)

_worker_encoder = None  # the model of this worker process, loaded by _start_worker
_worker_error: str | None = None  # why it could not be loaded


def _exit_with_parent() -> None:
    """Linux: have the kernel end this worker when the process that started it dies (killed, crashed), so no model
    copies are left running; elsewhere the pool's own shutdown does it."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - best effort: the pool's shutdown still ends the worker
            pass


def _start_worker(model: str, backend: str, devices, threads: int, min_cosine: float | None,
                  calibration: list[str] | None = None) -> None:
    global _worker_encoder, _worker_error
    _exit_with_parent()
    device = devices.get()  # each worker takes the next device from the shared queue
    try:
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)
            import torch

            torch.set_num_threads(threads)
        from embtune.encoders import load_encoder

        _worker_encoder = load_encoder(model, device=device, backend=backend, min_cosine=min_cosine,
                                       calibration=calibration)
        if threads and hasattr(_worker_encoder, "threads"):
            _worker_encoder.threads = threads  # ONNX Runtime's / OpenVINO's threads, before the session is made
    except Exception as e:  # noqa: BLE001 - said on the first task: a failing initializer only breaks the pool
        _worker_error = f"{model} could not be loaded in an encoding worker on {device}: {type(e).__name__}: {e}"


def _loaded():
    if _worker_error is not None:
        raise EmbtuneError(_worker_error)
    return _worker_encoder


def _encode_in_worker(items: list, batch_size: int, normalize: bool) -> np.ndarray:
    return _loaded().encode(items, batch_size=batch_size, normalize=normalize)


def _dim_in_worker() -> int:
    return int(_loaded().dim)


class ProcessPoolEncoder:
    """Runs ``processes`` copies of ``inner``'s model in worker processes (started on the first encode, stopped by
    ``close``); its vectors, fingerprint and cache entries are the same as ``inner``'s.

    >>> with ProcessPoolEncoder(load_encoder("all-MiniLM-L6-v2"), processes=2) as encoder:
    ...     vectors = encoder.encode(texts)
    """

    def __init__(self, inner, *, processes: int, model: str | None = None, device: str = "auto",
                 backend: str = "torch", min_cosine: float | None = None):
        if processes < 2:
            raise EmbtuneError(f"--nproc {processes}: a process pool needs at least 2 processes; drop --nproc")
        model = model if model is not None else getattr(inner, "path", None) or getattr(inner, "source", None)
        if model is None:
            raise EmbtuneError(f"{inner.name} was built in this process; --nproc needs a model name or folder to load")
        # The parent keeps ``inner`` unloaded, for the fingerprint, name and saving; the workers load ``model``.
        self.inner = inner
        self.model_spec = str(model)
        self.processes = int(processes)
        self.device_spec = device
        self.backend = backend
        self.min_cosine = min_cosine
        self.name = inner.name
        self.modality = getattr(inner, "modality", "text")
        if hasattr(inner, "item_key"):
            self.item_key = inner.item_key
        self._pool: ProcessPoolExecutor | None = None
        self._dim: int | None = None

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint  # the same weights give the same vectors: the cache is shared with one process

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._submit(_dim_in_worker).result()
        return self._dim

    def worker_devices(self) -> list[str]:
        from embtune.nn.device import resolve_device

        device = resolve_device(self.device_spec)
        if device == "cuda":
            import torch

            return [f"cuda:{i % torch.cuda.device_count()}" for i in range(self.processes)]
        return [device] * self.processes

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is not None:
            return self._pool
        import multiprocessing

        if self.backend != "torch":
            self.inner.encode(["prepare the export once, before the workers look for it"], batch_size=1)
        devices = self.worker_devices()
        threads = max(1, (os.cpu_count() or 1) // self.processes) if devices[0] == "cpu" else 0
        context = multiprocessing.get_context("spawn")  # fork would copy a loaded torch / CUDA state
        queue = context.Queue()
        for device in devices:
            queue.put(device)
        log.info("starting %d encoding processes on %s%s", self.processes, ", ".join(devices),
                 f" ({threads} thread(s) each)" if threads else "")
        self._pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_worker,
                                         initargs=(self.model_spec, self.backend, queue, threads, self.min_cosine,
                                                   getattr(self.inner, "calibration", None)))
        return self._pool

    def _submit(self, fn, *args):
        try:
            return self._start().submit(fn, *args)
        except BrokenProcessPool:
            self.close()
            raise EmbtuneError(self._died()) from None

    def _died(self) -> str:
        return (f"an encoding worker process died ({self.processes} processes of {self.name}); out of memory? "
                "Try fewer processes (--nproc) or a smaller --batch-size")

    def encode(self, items: Sequence, *, batch_size: int = 64, normalize: bool = True,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        items = list(items)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Longest first, as sentence-transformers sorts, so each batch pads to texts of about its own length; whole
        # batches are handed out as workers free up, so unequal lengths do not leave a worker idle.
        order = sorted(range(len(items)), key=lambda i: -len(items[i]) if isinstance(items[i], str) else 0)
        ordered = [items[i] for i in order]
        size = max(1, min(batch_size, math.ceil(len(items) / self.processes)))
        pending = {self._submit(_encode_in_worker, ordered[i : i + size], batch_size, normalize): i
                   for i in range(0, len(items), size)}
        parts: dict[int, np.ndarray] = {}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    begin = pending.pop(future)
                    parts[begin] = future.result()
                    if on_batch is not None:
                        on_batch(len(parts[begin]))
        except BrokenProcessPool:
            self.close()
            raise EmbtuneError(self._died()) from None
        finally:
            for future in pending:
                future.cancel()
        sorted_vectors = np.concatenate([parts[begin] for begin in sorted(parts)]).astype(np.float32, copy=False)
        vectors = np.empty_like(sorted_vectors)
        vectors[order] = sorted_vectors
        self._dim = vectors.shape[1]
        return vectors

    def module(self):
        raise EmbtuneError("a multi-process encoder only encodes; fine-tune with `embtune finetune --nproc N` instead")

    def save(self, path: str | Path) -> None:
        self.inner.save(path)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessPoolEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
