"""Running one handler once: outcomes, timeouts, and sync handlers kept off the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from handlers import DoNotRetry, Event, on
from handlers.errors import HandlerFailed, HandlerGaveUp, HandlerTimedOut
from handlers.registry import Handler, HandlerRegistry
from handlers.runner import run_handler
from tests.factories import task_data

EVENT = Event(
    id="evt_1",
    type="task.failed",
    timestamp=datetime(2025, 1, 1, tzinfo=UTC),
    data={"task": task_data(id="task_1")},
    attempt=2,
)


def handler_of(func: Callable[..., Any]) -> Handler:
    return HandlerRegistry().register(func, source="test")


async def test_an_async_handler_is_awaited() -> None:
    seen: list[tuple[str, int]] = []

    @on("task.failed")
    async def record(event: Event) -> None:
        await asyncio.sleep(0)
        seen.append((event.id, event.attempt))

    await run_handler(handler_of(record), EVENT, default_timeout=5)

    assert seen == [("evt_1", 2)]


async def test_a_sync_handler_runs_in_another_thread() -> None:
    threads: list[threading.Thread] = []

    @on("task.failed")
    def record(event: Event) -> None:
        threads.append(threading.current_thread())

    await run_handler(handler_of(record), EVENT, default_timeout=5)

    assert len(threads) == 1
    assert threads[0] is not threading.current_thread()
    assert threads[0].daemon


async def test_a_sleeping_sync_handler_does_not_block_the_loop() -> None:
    @on("task.failed")
    def slow(event: Event) -> None:
        time.sleep(0.3)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        await run_handler(handler_of(slow), EVENT, default_timeout=5)
    finally:
        ticking.cancel()

    assert ticks >= 10  # ~30 if the loop ran freely, 0 if time.sleep had blocked it


async def test_a_sync_handler_may_return_an_awaitable() -> None:
    seen: list[str] = []

    class Publisher:
        async def __call__(self, event: Event) -> None:
            seen.append(event.id)

    publisher = on("task.failed")(Publisher())

    await run_handler(handler_of(publisher), EVENT, default_timeout=5)

    assert seen == ["evt_1"]


async def test_each_run_gets_its_own_copy_of_the_data() -> None:
    @on("task.failed")
    def vandal(event: Event) -> None:
        event.data["task"]["id"] = "changed"

    await run_handler(handler_of(vandal), EVENT, default_timeout=5)

    assert EVENT.data["task"]["id"] == "task_1"


@pytest.mark.parametrize("is_async", [True, False])
async def test_an_exception_is_handler_failed_with_the_cause(is_async: bool) -> None:
    def fail(event: Event) -> None:
        raise ValueError("bad input")

    async def afail(event: Event) -> None:
        raise ValueError("bad input")

    handler = handler_of(on("task.failed")(afail if is_async else fail))

    with pytest.raises(HandlerFailed) as caught:
        await run_handler(handler, EVENT, default_timeout=5)

    error = caught.value
    assert type(error) is HandlerFailed
    assert isinstance(error.__cause__, ValueError)
    assert str(error) == (
        f"handler {handler.name} on task.failed evt_1 (attempt 2) failed: ValueError: bad input"
    )
    assert (error.handler, error.event_id, error.event_type) == (
        handler.name,
        "evt_1",
        "task.failed",
    )
    assert error.retryable


async def test_a_timeout_error_the_handler_raises_itself_is_a_plain_failure() -> None:
    @on("task.failed")
    async def own_timeout(event: Event) -> None:
        raise TimeoutError("upstream too slow")

    with pytest.raises(HandlerFailed) as caught:
        await run_handler(handler_of(own_timeout), EVENT, default_timeout=5)

    assert not isinstance(caught.value, HandlerTimedOut)


async def test_a_hanging_async_handler_times_out_with_the_default_timeout() -> None:
    @on("task.failed")
    async def hang(event: Event) -> None:
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(HandlerTimedOut, match=r"timed out after 0\.05s") as caught:
        await run_handler(handler_of(hang), EVENT, default_timeout=0.05)

    assert time.monotonic() - started < 2
    assert isinstance(caught.value, HandlerFailed)  # a timeout is retried like a failure


async def test_a_hanging_sync_handler_is_abandoned_at_its_own_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    @on("task.failed", timeout=0.05)
    def hang(event: Event) -> None:
        release.wait(10)

    try:
        with pytest.raises(HandlerTimedOut, match=r"timed out after 0\.05s"):
            await run_handler(handler_of(hang), EVENT, default_timeout=30)
    finally:
        release.set()  # the abandoned thread ends soon; its outcome is discarded

    assert "thread cannot be stopped and is abandoned" in caplog.text


async def test_a_late_abandoned_thread_does_not_disturb_the_loop() -> None:
    done = threading.Event()

    @on("task.failed", timeout=0.05)
    def late(event: Event) -> None:
        time.sleep(0.2)
        done.set()

    with pytest.raises(HandlerTimedOut):
        await run_handler(handler_of(late), EVENT, default_timeout=30)
    await asyncio.to_thread(done.wait, 5)
    await asyncio.sleep(0.05)  # let the discarded outcome reach the loop


@pytest.mark.parametrize("is_async", [True, False])
async def test_do_not_retry_is_handler_gave_up(is_async: bool) -> None:
    def give_up(event: Event) -> None:
        raise DoNotRetry("malformed payload")

    async def agive_up(event: Event) -> None:
        raise DoNotRetry("malformed payload")

    handler = handler_of(on("task.failed")(agive_up if is_async else give_up))

    with pytest.raises(HandlerGaveUp, match="gave up: DoNotRetry: malformed payload") as caught:
        await run_handler(handler, EVENT, default_timeout=5)

    assert isinstance(caught.value.__cause__, DoNotRetry)
    assert not isinstance(caught.value, HandlerFailed)
    assert not caught.value.retryable


async def test_a_handler_calling_sys_exit_does_not_stop_the_worker() -> None:
    @on("task.failed")
    def quit_(event: Event) -> None:
        raise SystemExit(3)

    with pytest.raises(HandlerFailed, match="SystemExit: 3"):
        await run_handler(handler_of(quit_), EVENT, default_timeout=5)


async def test_one_failing_handler_does_not_stop_the_others() -> None:
    seen: list[str] = []

    @on("task.failed")
    async def broken(event: Event) -> None:
        raise RuntimeError("boom")

    @on("task.failed")
    def fine(event: Event) -> None:
        seen.append("fine")

    outcomes = await asyncio.gather(
        run_handler(handler_of(broken), EVENT, default_timeout=5),
        run_handler(handler_of(fine), EVENT, default_timeout=5),
        return_exceptions=True,
    )

    assert isinstance(outcomes[0], HandlerFailed)
    assert outcomes[1] is None
    assert seen == ["fine"]
