"""Collect requests into batches on the event loop; run them on the model worker thread.

A batch starts with the oldest waiting job and takes more until it holds
``max_batch`` rows or the oldest job has waited ``max_wait_ms``. While the worker
runs a batch, new jobs queue up and form the next one, so under load batches fill
without waiting. Model work never runs on the event loop: torch releases the GIL,
so the loop keeps accepting and answering requests meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from adapterkit.serve.jobs import Job


@dataclass
class BatchStats:
    """Counters for /health: how much batching actually happened."""

    batches: int = 0
    rows: int = 0
    largest_batch: int = 0
    mixed_batches: int = 0
    """Batches whose rows used more than one adapter (None counts as one)."""

    def record(self, jobs: list[Job]) -> None:
        """Count one batch."""
        rows = sum(job.rows for job in jobs)
        self.batches += 1
        self.rows += rows
        self.largest_batch = max(self.largest_batch, rows)
        if len({job.adapter for job in jobs}) > 1:
            self.mixed_batches += 1


class Batcher:
    """Cross-request, cross-adapter batching.

    Args:
        run_batch: ``jobs -> results`` (an answer or an exception per job); runs on ``executor``.
        executor: The single model worker thread.
        max_batch: Most rows per batch.
        max_wait_ms: Longest a batch's first job waits for others.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Job]], list[Any]],
        executor: Executor,
        max_batch: int,
        max_wait_ms: float,
    ) -> None:
        self._run_batch = run_batch
        self._executor = executor
        self._max_batch = max_batch
        self._max_wait = max_wait_ms / 1000.0
        self._pending: collections.deque[Job] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.stats = BatchStats()

    async def start(self) -> None:
        """Start the collecting loop (call from the running event loop)."""
        self._task = asyncio.create_task(self._loop(), name="adapterkit-batcher")

    async def stop(self) -> None:
        """Stop collecting; jobs still waiting are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._pending:
            if job.future is not None and not job.future.done():
                job.future.cancel()
        self._pending.clear()

    async def submit(self, job: Job) -> Any:
        """Queue ``job`` and wait for its answer (its exception is raised here)."""
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        job.arrived = loop.time()
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    async def _collect(self) -> list[Job]:
        loop = asyncio.get_running_loop()
        while not self._pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        jobs = [self._pending.popleft()]
        rows = jobs[0].rows
        deadline = jobs[0].arrived + self._max_wait
        while rows < self._max_batch:
            if self._pending:
                if rows + self._pending[0].rows > self._max_batch:
                    break  # it opens the next batch instead
                job = self._pending.popleft()
                jobs.append(job)
                rows += job.rows
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), left)
        return [job for job in jobs if job.future is not None and not job.future.done()]

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()  # drops jobs whose client went away
            if not jobs:
                continue
            self.stats.record(jobs)
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, jobs)
            except Exception as exc:  # run_batch catches per job; this is a last resort
                results = [exc] * len(jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future is None or job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)


class NaiveRunner:
    """The baseline: one job at a time under a global lock, no batching across requests.

    Args:
        run_one: ``job -> answer`` (raises on failure); runs on ``executor``.
        executor: The single model worker thread.
    """

    def __init__(self, run_one: Callable[[Job], Any], executor: Executor) -> None:
        self._run_one = run_one
        self._executor = executor
        self._lock = asyncio.Lock()
        self.stats = BatchStats()

    async def start(self) -> None:
        """Nothing to start; present so both runners share one interface."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def submit(self, job: Job) -> Any:
        """Run ``job`` alone once every earlier job is done."""
        async with self._lock:
            self.stats.record([job])
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._run_one, job)
