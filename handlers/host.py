"""The handler host: where handler functions run, away from the loop that answers callbacks.

One per process, owned by its ``Services`` (opened and closed with them). It holds:

* a **handler loop** (:mod:`handlers.loop_thread`): async handlers run there, on an event loop
  in a thread of its own, never on the process's main loop. The caller, on the main loop,
  awaits the outcome under the run's timeout; on timeout the run's task is cancelled there;
* a **bounded pool of threads** for sync handlers (:mod:`handlers.threads`);
* a **watchdog** (:mod:`handlers.watchdog`) that warns when the handler loop stops answering,
  naming the handler that blocks it.

When an async run times out and its loop does not answer within ``responsive_within``, a
handler blocks the loop (``time.sleep`` in ``async def``): the host **replaces** the loop with a
fresh one, so the other handlers keep running, and abandons the blocked one (a daemon thread,
which ends once the handler returns and the loop's last runs have ended). At most
``max_abandoned_loops`` blocked loops are left behind at once; past that the blocked loop is
kept, its runs time out and are retried later, so a handler that never returns cannot make
threads without bound.

Threads (loop, watchdog) start with the first async run: a process that runs no handler pays
nothing. Handler code shares the handler loop: an asyncio object a plugin created at import
time and bound to another loop cannot be used from there (nor from a replacement loop).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from handlers.api import Event
from handlers.host_metrics import HostCollector, HostCounts, HostSnapshot
from handlers.hosted_run import HostedRun, Stage
from handlers.loop_thread import HandlerLoop
from handlers.threads import HandlerThreads
from handlers.watchdog import LoopWatchdog

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 8


class HostClosed(RuntimeError):
    """The host closed (the process is shutting down) before or while a run ran."""


class HandlerHost:
    def __init__(
        self,
        *,
        threads: int = DEFAULT_THREADS,
        thread_limit: int | None = None,
        block_warning: float = 1.0,
        responsive_within: float = 0.5,
        max_abandoned_loops: int | None = None,
        heartbeat: float = 0.1,
        close_grace: float = 2.0,
    ) -> None:
        """``threads`` sync runs at once, ``thread_limit`` threads at all (twice ``threads``);
        ``block_warning``: a handler loop silent this long is reported blocked."""
        self._threads = HandlerThreads(threads, limit=thread_limit)
        self._block_warning = block_warning
        self._responsive_within = responsive_within
        self._max_abandoned_loops = (
            max_abandoned_loops if max_abandoned_loops is not None else threads
        )
        self._heartbeat = heartbeat
        self._close_grace = close_grace
        self._lock = threading.Lock()  # guards the loops, which the watchdog reads
        self._loop: HandlerLoop | None = None
        self._abandoned_loops: list[HandlerLoop] = []
        # Per loop runs go to: done once it is replaced (runs queued behind it move on).
        self._replaced: dict[str, asyncio.Future[None]] = {}
        self._watchdog: LoopWatchdog | None = None
        self._closed = False
        self._numbers = itertools.count(1)
        self._counts = HostCounts()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(HostCollector(self.snapshot))

    async def __aenter__(self) -> HandlerHost:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def call(self, func: Callable[[Event], Any], event: Event, run: HostedRun) -> None:
        """``func(event)``: async ones on the handler loop, sync ones in a pool thread (an
        awaitable a sync one returns is awaited on the handler loop). Its exception, if any.
        Cancelling this (the run's timeout) cancels it there, or abandons its thread."""
        if inspect.iscoroutinefunction(func):
            result = await self._on_loop(lambda: func(event), run)
        else:
            result = await self._threads.run(lambda: func(event), run)
        if inspect.isawaitable(result):
            # await_me_maybe: a callable object with an async __call__, a lambda returning a
            # coroutine... Awaited where async handlers run, never on the caller's loop.
            awaitable: Awaitable[Any] = result
            await self._on_loop(lambda: awaitable, run)

    async def timed_out(self, run: HostedRun) -> None:
        """Account for a run that outlived its timeout; replace the loop if it blocks it."""
        if run.stage is Stage.WAITING_FOR_THREAD:
            self._counts.add(thread_waits_expired=1)
        elif run.stage is Stage.IN_THREAD:
            self._counts.add(timeouts_sync=1)
        else:
            self._counts.add(timeouts_async=1)
        if run.stage is Stage.ON_LOOP:
            loop = self._loop  # still the one it ran on, unless another run replaced it
            if loop is not None and loop.name == run.loop_name and not await self._answers(loop):
                self._replace(loop, run)

    def snapshot(self) -> HostSnapshot:
        return replace(
            self._counts.snapshot(),
            threads=self._threads.threads,
            threads_busy=self._threads.running,
            threads_abandoned=self._threads.abandoned,
            loops_abandoned=len(self._alive_abandoned_loops()),
        )

    async def close(self) -> None:
        """Stop: cancel the runs on the handler loop and give it ``close_grace`` to end.
        Never waits longer: a hung handler's thread is a daemon and is left behind."""
        with self._lock:
            self._closed = True
            loop, self._loop = self._loop, None
            watchdog, self._watchdog = self._watchdog, None
        self._threads.close()
        for replaced in self._replaced.values():  # runs not started yet fail at once
            if not replaced.done():
                replaced.set_result(None)
        self._replaced.clear()
        if watchdog is not None:
            watchdog.stop()
        if loop is None:
            return
        loop.close()
        # A thread's end cannot be awaited on a loop: joined from a thread, bounded by the grace.
        await asyncio.to_thread(loop.join, self._close_grace)
        if loop.alive:
            logger.warning(
                "handler loop %s did not stop within %.1fs (a handler blocks it); its thread "
                "is left behind",
                loop.name,
                self._close_grace,
                extra={"action": "handler.loop_left_running"},
            )

    async def _on_loop(self, call: Callable[[], Awaitable[Any]], run: HostedRun) -> Any:
        while True:
            loop, replaced = self._current_loop()
            run.stage = Stage.ON_LOOP
            run.loop_name = loop.name
            submission = loop.submit(call, run)
            outcome = asyncio.wrap_future(submission.future)
            try:
                await asyncio.wait((outcome, replaced), return_when=asyncio.FIRST_COMPLETED)
                if not outcome.done() and loop.withdraw(submission):
                    continue  # queued behind a blocked loop, never started: to the fresh one
                return (await outcome).unwrap()
            except asyncio.CancelledError:
                outcome.cancel()  # cancels it over there (asyncio.wait leaves it be)
                caller = asyncio.current_task()
                if caller is not None and caller.cancelling():
                    raise  # the caller's own cancellation: its timeout, or its shutdown
                # Cancelled over there: the host closed (cancelling every run on its loop).
                raise HostClosed(f"the handler host closed while {run.about} ran") from None

    def _current_loop(self) -> tuple[HandlerLoop, asyncio.Future[None]]:
        """The loop runs go to, and a future done once it is replaced."""
        with self._lock:
            if self._closed:
                raise HostClosed("the handler host is closed")
            if self._loop is None:
                self._loop = self._new_loop()
            if self._loop.name not in self._replaced:
                self._replaced[self._loop.name] = asyncio.get_running_loop().create_future()
            if self._watchdog is None:
                self._watchdog = LoopWatchdog(
                    self._watched_loops,
                    threshold=self._block_warning,
                    interval=self._heartbeat,
                    on_block=lambda: self._counts.add(loop_blocks=1),
                )
            return self._loop, self._replaced[self._loop.name]

    def _new_loop(self) -> HandlerLoop:
        return HandlerLoop(
            f"omnihook-handler-loop-{next(self._numbers)}", heartbeat=self._heartbeat
        )

    def _watched_loops(self) -> list[HandlerLoop]:
        with self._lock:
            current = [self._loop] if self._loop is not None else []
        return current + self._alive_abandoned_loops()

    def _alive_abandoned_loops(self) -> list[HandlerLoop]:
        with self._lock:
            self._abandoned_loops = [loop for loop in self._abandoned_loops if loop.alive]
            return list(self._abandoned_loops)

    async def _answers(self, loop: HandlerLoop) -> bool:
        """Whether ``loop`` runs its heartbeat within ``responsive_within`` from now."""
        asked = time.monotonic()
        deadline = asked + self._responsive_within
        while time.monotonic() < deadline:
            if loop.last_beat() > asked:
                return True
            await asyncio.sleep(self._heartbeat / 4)
        return loop.last_beat() > asked

    def _replace(self, blocked: HandlerLoop, run: HostedRun) -> None:
        blocker = blocked.blocker()
        abandoned = self._alive_abandoned_loops()
        with self._lock:
            if self._loop is not blocked or self._closed:
                return  # another timed-out run replaced it already
            keep = len(abandoned) >= self._max_abandoned_loops
            if not keep:
                self._loop = self._new_loop()
                self._abandoned_loops.append(blocked)
        if blocker is run:
            story = f"{run.about} blocks handler loop {blocked.name} past its timeout"
        else:
            culprit = blocker.about if blocker is not None else "code outside any handler's step"
            story = f"{culprit} blocks handler loop {blocked.name} past the timeout of {run.about}"
        context = (blocker or run).log_context
        if keep:
            logger.warning(
                "%s, but %d blocked loops are left behind already: it is kept, and its runs "
                "time out until it answers",
                story,
                len(abandoned),
                extra={"action": "handler.loop_kept", **context},
            )
            return
        blocked.retire()
        replaced = self._replaced.pop(blocked.name, None)
        if replaced is not None:
            replaced.set_result(None)  # runs queued behind it move to the fresh loop
        self._counts.add(loops_replaced=1)
        logger.warning(
            "%s: the loop is replaced by a fresh one, its thread is abandoned",
            story,
            extra={"action": "handler.loop_replaced", **context},
        )
