"""One hung handler next to a healthy one: the healthy one's runs are not delayed at all.

Each async handler has a loop of its own, so one that blocks its loop on every attempt delays
only its own runs; sync handlers share the pool, but one holds at most its share of it (its
abandoned threads included), so one that never returns leaves the others a thread."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest

from handlers import Event, on
from handlers.errors import HandlerThreadsBusy, HandlerTimedOut
from handlers.host import HandlerHost
from handlers.registry import Handler, HandlerRegistry
from handlers.runner import run_handler
from handlers.thread_shares import ThreadShares
from tests.factories import task_data

EVENTS = [
    Event(
        id=f"evt_{number}",
        type="task.failed",
        timestamp=datetime(2025, 1, 1, tzinfo=UTC),
        data={"task": task_data(id=f"task_{number}")},
        attempt=1,
    )
    for number in range(10)
]

# A healthy run that takes longer than this waited for something (a blocked loop, a thread):
# its own work is a few milliseconds. Generous, for a slow and noisy machine.
PROMPT = 0.5


def handler_of(func: Callable[..., Any]) -> Handler:
    return HandlerRegistry().register(func, source="test")


def records(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) == action]


def metric(host: HandlerHost, name: str) -> float:
    for line in generate_latest(host.registry).decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} in the host's metrics")


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """What hung handlers wait for; set at the end, so no test leaves a thread behind."""
    event = threading.Event()
    yield event
    event.set()


async def timed(run: Awaitable[Any]) -> float:
    """How long ``await run`` took (from its start); it raises what the run raised."""
    started = time.monotonic()
    await run
    return time.monotonic() - started


async def test_an_async_handler_blocking_its_loop_every_time_does_not_delay_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    healthy_threads: list[str] = []

    @on("task.failed", timeout=1)
    async def blocks(event: Event) -> None:
        time.sleep(3)  # blocking code inside async def, on every attempt

    @on("task.failed", timeout=10)
    async def healthy(event: Event) -> None:
        await asyncio.sleep(0.01)
        healthy_threads.append(threading.current_thread().name)

    blocker, other = handler_of(blocks), handler_of(healthy)
    caplog.set_level(logging.INFO)
    async with HandlerHost(block_warning=0.5) as host:

        async def event_arrives(number: int, event: Event) -> tuple[Any, float]:
            await asyncio.sleep(0.3 * number)  # events keep coming while the blocker blocks
            blocked = asyncio.create_task(
                run_handler(blocker, event, default_timeout=30, host=host)
            )
            took = await timed(run_handler(other, event, default_timeout=30, host=host))
            outcome = (await asyncio.gather(blocked, return_exceptions=True))[0]
            return outcome, took

        results = await asyncio.gather(*(event_arrives(n, e) for n, e in enumerate(EVENTS)))
        loops = metric(host, "omnihook_handler_loops")
        snapshot = host.snapshot()

    outcomes, healthy_took = zip(*results, strict=True)
    assert all(isinstance(outcome, HandlerTimedOut) for outcome in outcomes), outcomes
    assert max(healthy_took) < PROMPT, healthy_took
    assert len(healthy_threads) == len(EVENTS)
    assert len(set(healthy_threads)) == 1  # its own loop, never blocked, never replaced
    assert loops == 2  # one loop per handler
    assert snapshot.timeouts_async == len(EVENTS)
    assert snapshot.loops_replaced >= 1
    # The watchdog names the blocking handler, and nothing else.
    blocked = records(caplog, "handler.loop_blocked")
    assert blocked and {r.handler for r in blocked} == {blocker.name}  # type: ignore[attr-defined]
    assert all(r.handler == blocker.name for r in records(caplog, "handler.loop_replaced"))  # type: ignore[attr-defined]


async def test_a_sync_handler_that_never_returns_leaves_another_a_thread(
    release: threading.Event,
) -> None:
    @on("task.failed", timeout=0.2)
    def never_returns(event: Event) -> None:
        release.wait(30)

    @on("task.failed", timeout=10)
    def healthy(event: Event) -> None:
        time.sleep(0.01)

    hung, other = handler_of(never_returns), handler_of(healthy)
    outcomes: list[BaseException | None] = []
    healthy_took: list[float] = []
    # 2 runs at once, 4 threads at most: with no share, the hung handler's abandoned threads
    # would fill the pool after four events, and the healthy handler would wait for ever.
    async with HandlerHost(threads=2) as host:
        for event in EVENTS:
            hanging = asyncio.create_task(run_handler(hung, event, default_timeout=30, host=host))
            healthy_took.append(
                await timed(run_handler(other, event, default_timeout=30, host=host))
            )
            outcomes += await asyncio.gather(hanging, return_exceptions=True)
        snapshot = host.snapshot()
        share = host.thread_share

    assert share == 2
    assert all(isinstance(outcome, HandlerTimedOut) for outcome in outcomes), outcomes
    # The first two hung runs ran (and hold its share since); the later ones waited for them.
    assert [type(outcome) for outcome in outcomes[:2]] == [HandlerTimedOut, HandlerTimedOut]
    assert all(type(outcome) is HandlerThreadsBusy for outcome in outcomes[2:]), outcomes
    assert "its share" in str(outcomes[-1])
    assert max(healthy_took) < PROMPT, healthy_took
    assert (snapshot.threads_abandoned, snapshot.timeouts_sync) == (2, 2)
    assert snapshot.thread_waits_expired == len(EVENTS) - 2


async def test_a_hung_sync_handlers_share_comes_back_once_its_thread_returns(
    release: threading.Event,
) -> None:
    started = threading.Event()

    @on("task.failed", timeout=0.2)
    def hangs_until_released(event: Event) -> None:
        started.set()
        release.wait(30)

    @on("task.failed", timeout=5)
    def healthy(event: Event) -> None:
        pass

    hung = handler_of(hangs_until_released)
    async with HandlerHost(threads=2, thread_share=1) as host:
        await run_handler(handler_of(healthy), EVENTS[0], default_timeout=5, host=host)
        with pytest.raises(HandlerTimedOut):
            await run_handler(hung, EVENTS[0], default_timeout=30, host=host)
        with pytest.raises(HandlerThreadsBusy):  # its share is held by the abandoned run
            await run_handler(hung, EVENTS[1], default_timeout=30, host=host)
        release.set()
        # Its thread returns, and gives the share back: its next run gets a thread.
        await run_handler(hung, EVENTS[2], default_timeout=30, host=host)

    assert started.is_set()


async def test_a_share_is_given_back_exactly_once() -> None:
    shares = ThreadShares(1)
    await shares.claim("a")
    ran = await shares.claim("b")  # two handlers share the pool now: each holds one at most
    assert ran.start()
    ran.end()
    ran.drop()  # its caller stops waiting after the thread returned: nothing more to give
    never_ran = await shares.claim("b")
    never_ran.drop()  # its caller gave up before a thread took it
    assert not never_ran.start()  # the thread that takes it then must not run it
    never_ran.end()
    assert (shares.held("a"), shares.held("b")) == (1, 0)
    with pytest.raises(TimeoutError):  # "a" holds its share: it waits
        await asyncio.wait_for(shares.claim("a"), 0.1)


async def test_a_lone_handler_may_hold_more_than_a_share() -> None:
    shares = ThreadShares(1)
    await shares.claim("a")
    await asyncio.wait_for(shares.claim("a"), 5)  # nobody else needs a thread
    assert shares.held("a") == 2
