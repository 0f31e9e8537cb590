"""The batching worker: owns the model, runs every torch call on model threads, batches generations.

Concurrent ``/generate`` requests are collected into batches (a batch waits up to the batch window
while other requests are about; a lone request does not wait): one text-encoder call for all
prompts, one decoder call per group of similar lengths. A failing batch is retried item by item,
so only the bad item fails. ``slot()`` admits a request that is ready to run (its body already
read): 503 with Retry-After when ``max_jobs`` are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import MotionClipError
from ..protocol import GenerateRequest
from .options import HTTPFailure, log


@dataclass
class _Job:
    request: GenerateRequest
    future: asyncio.Future


class ModelWorker:
    """Owns a MotionModel; runs every torch call on one thread; batches generation requests."""

    def __init__(self, model, max_jobs: int = 128, max_batch: int = 32, batch_window_ms: float = 20.0,
                 workers: int = 1):
        self.model = model
        self.max_jobs = int(max_jobs)
        self.max_batch = int(max_batch)
        self.batch_window = float(batch_window_ms) / 1000.0
        self.workers = int(workers)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="motionclip-model")
        self.jobs = 0
        self.batches = 0
        self.batched_items = 0
        self.running_items = 0
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    # --- life cycle (inside the event loop) ---------------------------------------------------

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._batcher(), name="motionclip-batcher")

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(HTTPFailure(503, "", "the server is shutting down; send the request again "
                                                               "once it is back", {"Retry-After": "5"}))
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.executor.shutdown(wait=True))

    # --- admission ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def slot(self):
        """One job in flight; 503 when max_jobs are."""
        if self._closing:
            raise HTTPFailure(503, "", "the server is shutting down", {"Retry-After": "5"})
        if self.jobs >= self.max_jobs:
            raise HTTPFailure(503, "", f"the server is busy: {self.jobs} requests in flight (the limit is "
                                       f"{self.max_jobs}); retry in a moment, or start it with a larger --max-jobs")
        self.jobs += 1
        try:
            yield
        finally:
            self.jobs -= 1

    # --- work ---------------------------------------------------------------------------------

    async def run(self, fn: Callable, *args: Any) -> Any:
        """fn(*args) on the model thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def generate(self, request: GenerateRequest):
        """One generation, batched with whatever else is waiting."""
        assert self._queue is not None, "worker not started"
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(request, future))
        return await future

    async def _batcher(self) -> None:
        """Collects a batch whenever a model thread is free, and hands it over."""
        queue = self._queue
        assert queue is not None
        free = asyncio.Semaphore(self.workers)
        running: set[asyncio.Task] = set()
        while True:
            await free.acquire()
            try:
                batch = await self._collect(queue)
            except BaseException:
                free.release()
                raise
            if not batch:
                free.release()
                continue
            self.batches += 1
            self.batched_items += len(batch)
            task = asyncio.create_task(self._run_batch(batch, free))
            running.add(task)
            task.add_done_callback(running.discard)

    async def _collect(self, queue: asyncio.Queue) -> list[_Job]:
        """A batch: the first request, then whatever arrives within the batch window, but only while other
        requests are about (being read or answered, or running on another model thread, their clients
        about to send the next ones): a lone request does not wait."""
        loop = asyncio.get_running_loop()
        batch = [await queue.get()]
        deadline = loop.time() + self.batch_window
        while len(batch) < self.max_batch:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            elsewhere = self.jobs - len(batch) - self.running_items
            wait = deadline - loop.time()
            if (elsewhere <= 0 and self.running_items == 0) or wait <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), wait))
            except asyncio.TimeoutError:
                break
        return [job for job in batch if not job.future.done()]  # a client that left is not served

    async def _run_batch(self, batch: list[_Job], free: asyncio.Semaphore) -> None:
        self.running_items += len(batch)
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.executor, self._generate_many,
                                                                       [job.request for job in batch])
        except BaseException as exc:  # the executor itself failed (shut down): fail the batch
            results = [HTTPFailure(503, "", "the server is shutting down", {"Retry-After": "5"})
                       if isinstance(exc, (asyncio.CancelledError, RuntimeError)) else exc] * len(batch)
        finally:
            self.running_items -= len(batch)
            free.release()
        for job, result in zip(batch, results):
            if job.future.done():
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

    def _generate_many(self, requests: list[GenerateRequest]) -> list[Any]:
        """On the model thread: motions (or the exception of each failed item), in order."""
        kwargs = [dict(prompt=r.prompt, seed=r.seed, **r.length.as_kwargs()) for r in requests]
        try:
            if len(kwargs) > 1:
                self.model.text_embeddings([k["prompt"] for k in kwargs])  # one encoder call for the batch
            out: list[Any] = [None] * len(kwargs)
            for group in self._length_groups(kwargs):
                for i, m in zip(group, self.model.generate_batch([kwargs[i] for i in group])):
                    out[i] = m
            return out
        except Exception:
            if len(kwargs) == 1:
                return [_capture()]
        results = []
        for k in kwargs:  # the batch failed: each item alone, so only the bad ones fail
            try:
                results.append(self.model.generate_batch([k])[0])
            except Exception:
                results.append(_capture())
        return results

    def _length_groups(self, kwargs: list[dict]) -> list[list[int]]:
        """Indices grouped so that no item is padded to more than twice its model-rate length."""
        sizes = []
        for i, k in enumerate(kwargs):
            frames, fps = self.model.frames_for(k.get("frames"), k.get("seconds"), k.get("fps"))
            sizes.append((max(1.0, (frames - 1) / fps * self.model.fps + 1), i))
        sizes.sort()
        groups: list[list[int]] = []
        start = None
        for size, i in sizes:
            if start is None or size > 2 * start:
                groups.append([])
                start = size
            groups[-1].append(i)
        return groups


def _capture() -> BaseException:
    """The exception being handled, logged with its traceback (a model failure, not the client's fault)."""
    exc = sys.exc_info()[1]
    assert exc is not None
    if not isinstance(exc, MotionClipError):
        log.error("model failure:\n%s", traceback.format_exc())
    return exc
