"""The handler host: where handler functions run, away from the loop that answers callbacks.

One per process, owned by its ``Services`` (opened and closed with them). It holds:

* a **handler loop per async handler** (:mod:`handlers.loop_thread`), keyed by the handler's
  registry name and made on its first run: each runs on an event loop in a thread of its own,
  never on the process's main loop nor on another handler's. So a handler that blocks its loop
  (``time.sleep`` in ``async def``) delays only its own runs. The caller, on the main loop,
  awaits the outcome under the run's timeout; on timeout the run's task is cancelled there. The
  registry bounds the handlers, so it bounds these loops too;
* a **bounded pool of threads** for sync handlers (:mod:`handlers.threads`), shared by all of
  them. Once two sync handlers or more have run, one handler holds at most its **share** of
  the threads at once (``thread_share``, by default as many as run at once, of the twice as
  many the pool may have), its abandoned runs included: a sync handler that never returns
  cannot take every thread, so the others always find one. A lone sync handler may use the
  whole pool; a pool of one thread is not shared out;
* a **watchdog** (:mod:`handlers.watchdog`) that warns when a handler loop stops answering,
  naming the handler and the event that block it.

When an async run times out and its loop does not answer within ``responsive_within``, the
handler blocks the loop: the host **replaces** that handler's loop with a fresh one and abandons
the blocked one (a daemon thread, which ends once the handler returns and the loop's last runs
have ended); the handler's runs queued behind it, not started, move to the fresh loop and never
run twice. At most ``max_abandoned_loops`` blocked loops (of all handlers) are left behind at
once; past that the blocked loop is kept, that handler's runs time out and are retried later,
so a handler that never returns cannot make threads without bound.

Threads (a handler's loop, the watchdog) start with the first async run that needs them: a
process that runs no handler pays nothing. Handler code runs on its handler's loop: an asyncio
object a plugin created at import time and bound to another loop cannot be used from there (nor
from a replacement loop), and two handlers do not share a loop.
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
from handlers.thread_shares import ThreadShares
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
        thread_share: int | None = None,
        block_warning: float = 1.0,
        responsive_within: float = 0.5,
        max_abandoned_loops: int | None = None,
        heartbeat: float = 0.1,
        close_grace: float = 2.0,
    ) -> None:
        """``threads`` sync runs at once, ``thread_limit`` threads at all (twice ``threads``),
        ``thread_share`` of them held by one handler at most, abandoned ones included, once two
        sync handlers or more have run (``threads``: with the thread limit at twice that, one
        handler that hangs again and again leaves the others a whole pool's worth of threads,
        and its own later runs still find room after a few hung ones);
        ``block_warning``: a handler loop silent this long is reported blocked."""
        self._threads = HandlerThreads(threads, limit=thread_limit)
        # A pool of one thread cannot be shared out: its one handler thread is everybody's.
        default_share = threads if threads > 1 else None
        self._shares = ThreadShares(thread_share if thread_share is not None else default_share)
        self._block_warning = block_warning
        self._responsive_within = responsive_within
        self._max_abandoned_loops = (
            max_abandoned_loops if max_abandoned_loops is not None else threads
        )
        self._heartbeat = heartbeat
        self._close_grace = close_grace
        self._lock = threading.Lock()  # guards the loops, which the watchdog reads
        self._loops: dict[str, HandlerLoop] = {}  # each async handler's current loop, by name
        self._abandoned_loops: list[HandlerLoop] = []
        # Per loop runs go to: done once it is replaced (runs queued behind it move on).
        self._replaced: dict[str, asyncio.Future[None]] = {}
        self._watchdog: LoopWatchdog | None = None
        self._closed = False
        self._numbers = itertools.count(1)
        self._counts = HostCounts()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(HostCollector(self.snapshot))

    @property
    def thread_share(self) -> int | None:
        """How many pool threads one sync handler holds at most, abandoned ones included, once
        two handlers share the pool (None: no cap)."""
        return self._shares.cap

    async def __aenter__(self) -> HandlerHost:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def call(self, func: Callable[[Event], Any], event: Event, run: HostedRun) -> None:
        """``func(event)``: async ones on the loop of ``run.handler``, sync ones in a pool thread
        (an awaitable a sync one returns is awaited on its handler's loop). Its exception, if
        any. Cancelling this (the run's timeout) cancels it there, or abandons its thread."""
        if inspect.iscoroutinefunction(func):
            result = await self._on_loop(lambda: func(event), run)
        else:
            result = await self._in_thread(lambda: func(event), run)
        if inspect.isawaitable(result):
            # await_me_maybe: a callable object with an async __call__, a lambda returning a
            # coroutine... Awaited where async handlers run, never on the caller's loop.
            awaitable: Awaitable[Any] = result
            await self._on_loop(lambda: awaitable, run)

    async def timed_out(self, run: HostedRun) -> None:
        """Account for a run that outlived its timeout; replace its loop if it blocks it."""
        if run.stage in (Stage.WAITING_FOR_SHARE, Stage.WAITING_FOR_THREAD):
            self._counts.add(thread_waits_expired=1)
        elif run.stage is Stage.IN_THREAD:
            self._counts.add(timeouts_sync=1)
        else:
            self._counts.add(timeouts_async=1)
        if run.stage is Stage.ON_LOOP:
            with self._lock:
                # Still the one it ran on, unless another run of its handler replaced it.
                loop = self._loops.get(run.handler)
            if loop is not None and loop.name == run.loop_name and not await self._answers(loop):
                self._replace(loop, run)

    def snapshot(self) -> HostSnapshot:
        with self._lock:
            loops = sum(1 for loop in self._loops.values() if loop.alive)
        return replace(
            self._counts.snapshot(),
            threads=self._threads.threads,
            threads_busy=self._threads.running,
            threads_abandoned=self._threads.abandoned,
            loops=loops,
            loops_abandoned=len(self._alive_abandoned_loops()),
        )

    async def close(self) -> None:
        """Stop: cancel the runs on every handler loop and give them ``close_grace`` (in all)
        to end. Never waits longer: a hung handler's thread is a daemon and is left behind."""
        with self._lock:
            self._closed = True
            loops = dict(self._loops)
            self._loops.clear()
            watchdog, self._watchdog = self._watchdog, None
        self._threads.close()
        for replaced in self._replaced.values():  # runs not started yet fail at once
            if not replaced.done():
                replaced.set_result(None)
        self._replaced.clear()
        if watchdog is not None:
            watchdog.stop()
        for loop in loops.values():
            loop.close()
        if not loops:
            return
        # A thread's end cannot be awaited on a loop: joined from a thread, bounded by the grace.
        await asyncio.to_thread(_join_all, list(loops.values()), self._close_grace)
        for handler, loop in loops.items():
            if loop.alive:
                logger.warning(
                    "handler loop %s of handler %s did not stop within %.1fs (the handler "
                    "blocks it); its thread is left behind",
                    loop.name,
                    handler,
                    self._close_grace,
                    extra={"action": "handler.loop_left_running", "handler": handler},
                )

    async def _in_thread(self, call: Callable[[], Any], run: HostedRun) -> Any:
        run.stage = Stage.WAITING_FOR_SHARE
        share = await self._shares.claim(run.handler)

        def within_share() -> Any:
            if not share.start():
                return None  # its caller gave up before it started: never run it
            try:
                return call()
            finally:
                share.end()  # returned at last, abandoned or not: the thread is free

        try:
            return await self._threads.run(within_share, run)
        finally:
            share.drop()  # given back here only when it never started

    async def _on_loop(self, call: Callable[[], Awaitable[Any]], run: HostedRun) -> Any:
        while True:
            loop, replaced = self._current_loop(run.handler)
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
                # Cancelled over there: the host closed (cancelling every run on its loops).
                raise HostClosed(f"the handler host closed while {run.about} ran") from None

    def _current_loop(self, handler: str) -> tuple[HandlerLoop, asyncio.Future[None]]:
        """The loop ``handler``'s runs go to (made on its first run), and a future done once
        it is replaced."""
        with self._lock:
            if self._closed:
                raise HostClosed("the handler host is closed")
            loop = self._loops.get(handler)
            if loop is None:
                loop = self._loops[handler] = self._new_loop()
            if loop.name not in self._replaced:
                self._replaced[loop.name] = asyncio.get_running_loop().create_future()
            if self._watchdog is None:
                self._watchdog = LoopWatchdog(
                    self._watched_loops,
                    threshold=self._block_warning,
                    interval=self._heartbeat,
                    on_block=lambda: self._counts.add(loop_blocks=1),
                )
            return loop, self._replaced[loop.name]

    def _new_loop(self) -> HandlerLoop:
        return HandlerLoop(
            f"omnihook-handler-loop-{next(self._numbers)}", heartbeat=self._heartbeat
        )

    def _watched_loops(self) -> list[HandlerLoop]:
        with self._lock:
            current = list(self._loops.values())
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
            if self._loops.get(run.handler) is not blocked or self._closed:
                return  # another timed-out run replaced it already
            keep = len(abandoned) >= self._max_abandoned_loops
            if not keep:
                self._loops[run.handler] = self._new_loop()
                self._abandoned_loops.append(blocked)
        if blocker is run:
            story = f"{run.about} blocks handler loop {blocked.name} past its timeout"
        else:
            culprit = blocker.about if blocker is not None else "code outside any handler's step"
            story = f"{culprit} blocks handler loop {blocked.name} past the timeout of {run.about}"
        context = (blocker or run).log_context
        if keep:
            logger.warning(
                "%s, but %d blocked loops are left behind already: it is kept, and its "
                "handler's runs time out until it answers",
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


def _join_all(loops: list[HandlerLoop], grace: float) -> None:
    """Wait (blocking) up to ``grace`` seconds in all for the loops' threads to end."""
    until = time.monotonic() + grace
    for loop in loops:
        loop.join(max(0.0, until - time.monotonic()))
