"""Sync handlers in the host's bounded pool: a hung handler costs a bounded number of threads,
its slot is replaced up to that bound, and the metrics show it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest

from handlers import Event, on
from handlers.errors import HandlerThreadsBusy, HandlerTimedOut
from handlers.host import HandlerHost
from handlers.registry import Handler, HandlerRegistry
from handlers.runner import run_handler
from handlers.threads import THREAD_NAME
from tests.factories import task_data

EVENT = Event(
    id="evt_1",
    type="task.failed",
    timestamp=datetime(2025, 1, 1, tzinfo=UTC),
    data={"task": task_data(id="task_1")},
    attempt=1,
)


def handler_of(func: Callable[..., Any]) -> Handler:
    return HandlerRegistry().register(func, source="test")


async def eventually(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """What hung handlers wait for; set at the end, so no test leaves a thread behind."""
    event = threading.Event()
    yield event
    event.set()


def hung(release: threading.Event, timeout: float) -> Handler:
    @on("task.failed", timeout=timeout)
    def never_returns(event: Event) -> None:
        release.wait(30)

    return handler_of(never_returns)


def quick(timeout: float = 5) -> Handler:
    @on("task.failed", timeout=timeout)
    def returns(event: Event) -> None:
        pass

    return handler_of(returns)


def pool_threads_started_since(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in set(threading.enumerate()) - before if t.name.startswith(THREAD_NAME)]


def metric(host: HandlerHost, line_start: str) -> float:
    for line in generate_latest(host.registry).decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {line_start} in the host's metrics")


async def test_a_never_returning_handler_run_20_times_leaves_a_bounded_number_of_threads(
    release: threading.Event,
) -> None:
    before = set(threading.enumerate())
    count_before = threading.active_count()
    outcomes: list[type[Exception]] = []
    async with HandlerHost(threads=2) as host:  # 2 runs at once, 4 threads at most
        for _ in range(20):
            with pytest.raises(HandlerTimedOut) as caught:
                await run_handler(hung(release, 0.1), EVENT, default_timeout=30, host=host)
            outcomes.append(type(caught.value))
        threads = pool_threads_started_since(before)
        grown_by = threading.active_count() - count_before
        snapshot = host.snapshot()
        abandoned = metric(host, "omnihook_handler_threads_abandoned")
        timeouts = metric(host, 'omnihook_handler_timeouts_total{kind="sync"}')
        waits = metric(host, "omnihook_handler_thread_waits_expired_total")

        release.set()
        await eventually("the abandoned threads ended", lambda: host.snapshot().threads == 0)
        await run_handler(quick(), EVENT, default_timeout=5, host=host)  # the pool works again

    # Four ran and were abandoned; the other sixteen never got a thread (no more were made).
    assert outcomes == [HandlerTimedOut] * 4 + [HandlerThreadsBusy] * 16
    assert len(threads) == 4 and all(t.daemon for t in threads)
    assert grown_by <= 4
    assert (snapshot.threads, snapshot.threads_abandoned, snapshot.threads_busy) == (4, 4, 0)
    assert (abandoned, timeouts, waits) == (4, 4, 16)


async def test_an_abandoned_thread_is_replaced_up_to_the_bound(release: threading.Event) -> None:
    async with HandlerHost(threads=1) as host:  # 1 run at once, 2 threads at most
        with pytest.raises(HandlerTimedOut):
            await run_handler(hung(release, 0.1), EVENT, default_timeout=30, host=host)
        # The abandoned thread is no free worker: a replacement runs this.
        await run_handler(quick(), EVENT, default_timeout=5, host=host)
        with pytest.raises(HandlerTimedOut):
            await run_handler(hung(release, 0.1), EVENT, default_timeout=30, host=host)
        # Now both threads the bound allows are abandoned: nothing runs until one returns.
        with pytest.raises(HandlerThreadsBusy, match=r"waiting for a free handler thread \(2 "):
            await run_handler(quick(0.3), EVENT, default_timeout=30, host=host)
        full = host.snapshot()

        waiting = asyncio.create_task(run_handler(quick(10), EVENT, default_timeout=30, host=host))
        await asyncio.sleep(0.2)
        waited = not waiting.done()
        release.set()  # the hung runs return: their threads end, the waiting run gets one
        await asyncio.wait_for(waiting, 10)

    assert (full.threads, full.threads_abandoned, full.timeouts_sync) == (2, 2, 2)
    assert full.thread_waits_expired == 1
    assert waited


async def test_at_most_the_configured_number_of_sync_runs_go_at_once() -> None:
    lock = threading.Lock()
    running = 0
    most = 0

    @on("task.failed", timeout=10)
    def busy(event: Event) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.1)
        with lock:
            running -= 1

    handler = handler_of(busy)
    async with HandlerHost(threads=3) as host:
        await asyncio.gather(
            *(run_handler(handler, EVENT, default_timeout=10, host=host) for _ in range(12))
        )
        threads = host.snapshot().threads

    assert most == 3
    assert threads == 3  # reused, not one thread per run


async def test_closing_the_host_does_not_wait_for_a_hung_sync_handler(
    release: threading.Event,
) -> None:
    started = threading.Event()

    @on("task.failed", timeout=30)
    def hangs(event: Event) -> None:
        started.set()
        release.wait(30)

    host = HandlerHost(threads=1)
    run = asyncio.create_task(run_handler(handler_of(hangs), EVENT, default_timeout=30, host=host))
    await asyncio.to_thread(started.wait, 5)
    await asyncio.wait_for(host.close(), 5)
    closed_while_hung = not release.is_set()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    assert closed_while_hung
