"""The bounded pool of threads where sync handlers run.

A sync handler that times out **cannot be killed**: Python has no way to stop a thread. Its
thread is *abandoned*: it keeps running until the function returns on its own, its outcome is
discarded, and it then ends instead of taking more work. An abandoned thread no longer counts
as a worker of the pool, so the pool starts a replacement, but only up to a bound:

* at most ``size`` runs are in progress at once (not counting abandoned ones);
* at most ``limit`` threads exist at all, abandoned ones included (twice ``size`` by default).

When abandoned threads fill the pool to ``limit``, a new run waits until one of them returns;
the caller's deadline decides how long (the runner reports that as a timeout, retried later).
So a handler that never returns costs a bounded number of threads, however often it is retried.

The threads are daemons started by the pool itself rather than those of a
``concurrent.futures.ThreadPoolExecutor``: interpreter exit (and ``asyncio.run``, for the
loop's default executor) waits for an executor's threads, so one hung handler would prevent the
worker from ever shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from handlers.hosted_run import HostedRun, Stage

THREAD_NAME = "omnihook-handler-thread"


class PoolClosed(RuntimeError):
    """The pool was closed (the process is shutting down): no more runs."""


@dataclass(eq=False)
class _Job:
    func: Callable[[], Any]
    context: contextvars.Context
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    label: str
    # Changed under the pool's lock only.
    started: bool = False
    finished: bool = False
    cancelled: bool = False  # its caller gave up before a thread took it: never run it
    abandoned: bool = False  # its caller gave up while it ran: its thread ends after it
    outcome: Any = None
    failure: BaseException | None = field(default=None, repr=False)


class HandlerThreads:
    def __init__(self, size: int, *, limit: int | None = None) -> None:
        if size < 1:
            raise ValueError("a handler thread pool needs at least one thread")
        self.size = size
        self.limit = max(limit if limit is not None else 2 * size, size)
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._running = 0  # admitted runs, not abandoned
        self._abandoned = 0  # threads still running a run whose caller gave up
        self._idle = 0  # threads waiting for a job
        self._threads = 0  # threads alive
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closed = False
        self._numbers = itertools.count(1)

    @property
    def abandoned(self) -> int:
        return self._abandoned

    @property
    def running(self) -> int:
        return self._running

    @property
    def threads(self) -> int:
        return self._threads

    async def run(self, func: Callable[[], Any], run: HostedRun) -> Any:
        """``func()`` in a pool thread, once there is room; its result, or its exception.

        Cancelling the caller (its timeout) abandons the thread: ``func`` goes on, its outcome
        is discarded. PoolClosed when the pool is closed.
        """
        run.stage = Stage.WAITING_FOR_THREAD
        await self._admit()
        loop = asyncio.get_running_loop()
        job = _Job(
            func,
            contextvars.copy_context(),  # as asyncio.to_thread does: keep contextvars
            loop,
            loop.create_future(),
            label=run.handler,
        )
        self._dispatch(job)
        run.stage = Stage.IN_THREAD
        try:
            return await job.future
        except asyncio.CancelledError:
            self._abandon(job)
            raise

    def close(self) -> None:
        """No more runs; idle threads end now, busy ones when their run returns (never
        waited for: a hung handler must not hold the process)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, 0
            self._wake_waiters()
        for _ in range(idle):
            self._jobs.put(None)

    async def _admit(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._closed:
                    raise PoolClosed("the handler thread pool is closed")
                if self._running < self.size and self._running + self._abandoned < self.limit:
                    self._running += 1
                    return
                waiter: asyncio.Future[None] = loop.create_future()
                entry = (loop, waiter)
                self._waiters.append(entry)
            try:
                await waiter
            finally:
                with self._lock, contextlib.suppress(ValueError):
                    self._waiters.remove(entry)

    def _dispatch(self, job: _Job) -> None:
        with self._lock:
            # Every queued job has a thread committed to it: an idle one, or a new one.
            start = self._idle == 0
            if start:
                self._threads += 1
            else:
                self._idle -= 1
        self._jobs.put(job)
        if start:
            name = f"{THREAD_NAME}-{next(self._numbers)}"
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _abandon(self, job: _Job) -> None:
        with self._lock:
            if job.finished:
                return  # it ended as its caller gave up: its slot is already free
            if not job.started:
                job.cancelled = True  # the thread committed to it frees the slot, unrun
                return
            job.abandoned = True
            self._running -= 1
            self._abandoned += 1
            self._wake_waiters()  # there may be room for a replacement now

    def _work(self) -> None:
        me = threading.current_thread()
        number = me.name
        while True:
            job = self._jobs.get()
            if job is None:  # closed
                with self._lock:
                    self._threads -= 1
                return
            with self._lock:
                run_it = not job.cancelled
                job.started = run_it
            if run_it:
                me.name = f"{number} {job.label}"
                self._execute(job)
                me.name = number
            with self._lock:
                job.finished = True
                if job.abandoned:
                    self._abandoned -= 1
                else:
                    self._running -= 1
                retire = job.abandoned or self._closed
                if retire:
                    self._threads -= 1
                else:
                    self._idle += 1
                self._wake_waiters()
            if retire:
                return

    def _execute(self, job: _Job) -> None:
        try:
            job.outcome = job.context.run(job.func)
        except BaseException as exc:  # delivered to the awaiting coroutine, not lost
            job.failure = exc
        # RuntimeError: the loop closed while an abandoned handler was still running.
        with contextlib.suppress(RuntimeError):
            job.loop.call_soon_threadsafe(_settle, job)

    def _wake_waiters(self) -> None:
        """Under the lock: every waiting run looks for room again (there are few)."""
        waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits any more
                loop.call_soon_threadsafe(_release, waiter)


def _settle(job: _Job) -> None:
    if job.future.done():  # cancelled by the timeout: the outcome is discarded
        return
    if job.failure is not None:
        job.future.set_exception(job.failure)
    else:
        job.future.set_result(job.outcome)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
