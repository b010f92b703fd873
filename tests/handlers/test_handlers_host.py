"""The handler host: async handlers on loops of their own, a watchdog that names the handler
blocking one, a blocked loop replaced, and a shutdown that does not wait for a hung handler."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from handlers import Event, on
from handlers.errors import HandlerFailed, HandlerTimedOut
from handlers.host import HandlerHost
from handlers.registry import Handler, HandlerRegistry
from handlers.runner import run_handler
from tests.factories import task_data

EVENT = Event(
    id="evt_1",
    type="task.failed",
    timestamp=datetime(2025, 1, 1, tzinfo=UTC),
    data={"task": task_data(id="task_1")},
    attempt=1,
)

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def handler_of(func: Callable[..., Any]) -> Handler:
    return HandlerRegistry().register(func, source="test")


def records(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) == action]


async def eventually(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


class Ticker:
    """Measures how late the caller's loop runs a 20 ms sleep: the delay a handler causes it."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.ticks = 0

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.02)
            self.worst = max(self.worst, time.monotonic() - started - 0.02)
            self.ticks += 1


async def test_an_async_handler_runs_on_a_loop_of_its_own_in_another_thread() -> None:
    seen: list[tuple[threading.Thread, asyncio.AbstractEventLoop]] = []

    @on("task.failed")
    async def where(event: Event) -> None:
        seen.append((threading.current_thread(), asyncio.get_running_loop()))

    async with HandlerHost() as host:
        await run_handler(handler_of(where), EVENT, default_timeout=5, host=host)

    [(thread, loop)] = seen
    assert thread is not threading.current_thread()
    assert thread.daemon
    assert loop is not asyncio.get_running_loop()


async def test_a_blocking_async_handler_does_not_delay_the_callers_loop() -> None:
    @on("task.failed", timeout=30)
    async def blocks(event: Event) -> None:
        time.sleep(3)  # blocking code inside async def: it stalls whatever loop runs it

    ticker = Ticker()
    ticking = asyncio.create_task(ticker.run())
    try:
        async with HandlerHost() as host:
            await run_handler(handler_of(blocks), EVENT, default_timeout=30, host=host)
    finally:
        ticking.cancel()

    # 3 s on the caller's loop would show as one 3 s delay; the margin is for a noisy machine.
    assert ticker.ticks >= 20
    assert ticker.worst < 0.5


async def test_contextvars_of_the_caller_reach_async_and_sync_handlers() -> None:
    seen: list[str] = []

    @on("task.failed")
    async def async_reader(event: Event) -> None:
        seen.append(REQUEST_ID.get())

    @on("task.failed")
    def sync_reader(event: Event) -> None:
        seen.append(REQUEST_ID.get())

    REQUEST_ID.set("req-7")
    async with HandlerHost() as host:
        await run_handler(handler_of(async_reader), EVENT, default_timeout=5, host=host)
        await run_handler(handler_of(sync_reader), EVENT, default_timeout=5, host=host)

    assert seen == ["req-7", "req-7"]


async def test_a_sync_handlers_awaitable_is_awaited_on_the_handler_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    class Publisher:
        async def __call__(self, event: Event) -> None:
            loops.append(asyncio.get_running_loop())

    async with HandlerHost() as host:
        await run_handler(
            handler_of(on("task.failed")(Publisher())), EVENT, default_timeout=5, host=host
        )

    assert loops and loops[0] is not asyncio.get_running_loop()


async def test_an_async_handler_raising_system_exit_fails_and_the_loop_goes_on() -> None:
    @on("task.failed")
    async def quits(event: Event) -> None:
        raise SystemExit(3)

    @on("task.failed")
    async def fine(event: Event) -> None:
        await asyncio.sleep(0)

    async with HandlerHost() as host:
        with pytest.raises(HandlerFailed, match="SystemExit: 3"):
            await run_handler(handler_of(quits), EVENT, default_timeout=5, host=host)
        await run_handler(handler_of(fine), EVENT, default_timeout=5, host=host)

        assert host.snapshot().loops_replaced == 0


async def test_an_async_timeout_cancels_the_coroutine_on_the_handler_loop() -> None:
    cancelled = threading.Event()

    @on("task.failed", timeout=0.2)
    async def hangs(event: Event) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with HandlerHost() as host:
        with pytest.raises(HandlerTimedOut, match=r"timed out after 0\.2s"):
            await run_handler(handler_of(hangs), EVENT, default_timeout=30, host=host)
        await asyncio.to_thread(cancelled.wait, 5)

        assert cancelled.is_set()
        snapshot = host.snapshot()
        # It awaited, so its loop answered: nothing to replace.
        assert (snapshot.timeouts_async, snapshot.loops_replaced) == (1, 0)


async def test_the_watchdog_names_the_handler_blocking_its_loop_and_for_how_long(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @on("task.failed", timeout=30)
    async def hog(event: Event) -> None:
        time.sleep(1.2)

    handler = handler_of(hog)
    caplog.set_level(logging.INFO)
    async with HandlerHost(block_warning=0.3) as host:
        await run_handler(handler, EVENT, default_timeout=30, host=host)
        await eventually("the loop resumed", lambda: bool(records(caplog, "handler.loop_resumed")))

        assert host.snapshot().loop_blocks == 1

    [blocked] = records(caplog, "handler.loop_blocked")
    assert blocked.levelno == logging.WARNING
    assert (blocked.handler, blocked.event_id) == (handler.name, "evt_1")  # type: ignore[attr-defined]
    assert handler.name in blocked.getMessage() and "evt_1" in blocked.getMessage()
    assert blocked.blocked_seconds >= 0.3  # type: ignore[attr-defined]
    [resumed] = records(caplog, "handler.loop_resumed")
    assert resumed.handler == handler.name  # type: ignore[attr-defined]
    assert resumed.blocked_seconds >= 1.0  # type: ignore[attr-defined]


async def test_a_loop_blocked_past_a_timeout_is_replaced_and_later_runs_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    ran_on: list[str] = []

    @on("task.failed")  # no timeout of its own: each run below says which
    async def blocks_once(event: Event) -> None:
        if event.id == EVENT.id:
            release.wait(20)  # a blocking wait inside async def: its loop stops answering
        else:
            await asyncio.sleep(0.01)
            ran_on.append(threading.current_thread().name)

    blocker = handler_of(blocks_once)
    later = dataclasses.replace(EVENT, id="evt_2")
    async with HandlerHost(block_warning=0.2) as host:
        try:
            with pytest.raises(HandlerTimedOut, match=r"timed out after 0\.3s"):
                await run_handler(blocker, EVENT, default_timeout=0.3, host=host)
            # The handler's old loop is still blocked: its later runs could only time out on it.
            for _ in range(3):
                await run_handler(blocker, later, default_timeout=5, host=host)
            blocked_meanwhile = not release.is_set()
            snapshot = host.snapshot()
        finally:
            release.set()
        await eventually("the abandoned loop ended", lambda: host.snapshot().loops_abandoned == 0)

    assert blocked_meanwhile
    assert ran_on == ["omnihook-handler-loop-2"] * 3
    assert (snapshot.loops_replaced, snapshot.loops_abandoned, snapshot.timeouts_async) == (1, 1, 1)
    [replaced] = records(caplog, "handler.loop_replaced")
    assert replaced.handler == blocker.name  # type: ignore[attr-defined]
    assert "omnihook-handler-loop-1" in replaced.getMessage()


async def test_blocked_loops_left_behind_are_bounded() -> None:
    release = threading.Event()

    @on("task.failed", timeout=0.2)
    async def blocks(event: Event) -> None:
        release.wait(20)

    before = set(threading.enumerate())
    async with HandlerHost(threads=2, max_abandoned_loops=2) as host:
        try:
            for _ in range(6):
                with pytest.raises(HandlerTimedOut):
                    await run_handler(handler_of(blocks), EVENT, default_timeout=30, host=host)
            loops = [t for t in set(threading.enumerate()) - before if "handler-loop" in t.name]
            snapshot = host.snapshot()
        finally:
            release.set()

    # Two left behind, plus the current one, which is then kept although blocked.
    assert len(loops) == 3
    assert (snapshot.loops_replaced, snapshot.loops_abandoned) == (2, 2)
    assert snapshot.timeouts_async == 6


async def test_closing_does_not_wait_for_a_hung_async_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started, release = threading.Event(), threading.Event()

    @on("task.failed", timeout=30)
    async def hangs(event: Event) -> None:
        started.set()
        release.wait(20)

    host = HandlerHost(close_grace=0.3)
    run = asyncio.create_task(run_handler(handler_of(hangs), EVENT, default_timeout=30, host=host))
    try:
        await asyncio.to_thread(started.wait, 5)
        await asyncio.wait_for(host.close(), 10)
        closed_while_hung = not release.is_set()
    finally:
        run.cancel()
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await run

    assert started.is_set() and closed_while_hung
    assert records(caplog, "handler.loop_left_running")


async def test_a_closed_host_cancels_what_runs_on_its_loop() -> None:
    cancelled = threading.Event()
    started = threading.Event()

    @on("task.failed", timeout=30)
    async def waits(event: Event) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    host = HandlerHost()
    run = asyncio.create_task(run_handler(handler_of(waits), EVENT, default_timeout=30, host=host))
    await asyncio.to_thread(started.wait, 5)
    await host.close()

    assert cancelled.is_set()
    # Not a cancellation the caller never asked for: a failure, retried like any other.
    with pytest.raises(HandlerFailed, match="the handler host closed while"):
        await asyncio.wait_for(run, 5)


async def test_a_run_queued_behind_a_blocked_loop_moves_to_the_fresh_one() -> None:
    started, release = threading.Event(), threading.Event()
    ran_on: list[str] = []

    @on("task.failed")  # no timeout of its own: each run below says which
    async def blocks_once(event: Event) -> None:
        if event.id == EVENT.id:
            started.set()
            release.wait(20)
        else:
            ran_on.append(threading.current_thread().name)

    handler = handler_of(blocks_once)
    async with HandlerHost(block_warning=0.2) as host:
        try:
            blocking = asyncio.create_task(
                run_handler(handler, EVENT, default_timeout=0.5, host=host)
            )
            await asyncio.to_thread(started.wait, 5)
            # Submitted to its handler's blocked loop, where it cannot start; its timeout is far
            # off, the blocking run's is not (it replaces the loop).
            queued = dataclasses.replace(EVENT, id="evt_2")
            await run_handler(handler, queued, default_timeout=30, host=host)
            moved_while_blocked = not release.is_set()
            with pytest.raises(HandlerTimedOut):
                await blocking
        finally:
            release.set()
        await eventually("the abandoned loop ended", lambda: host.snapshot().loops_abandoned == 0)

    assert moved_while_blocked
    assert ran_on == ["omnihook-handler-loop-2"]  # once, and not on the blocked loop
