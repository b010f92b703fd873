"""Supervised loops: a failing loop is logged and started again with backoff; its health."""

from __future__ import annotations

import asyncio
import logging

import pytest

from service.errors import StorageError
from service.supervise import Backoff, supervise
from service.worker_health import LoopHealth, WorkerHealth


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("previous", "ran_for", "expected"),
    [
        (None, 0.0, 0.1),  # the first failure
        (0.1, 0.0, 0.2),  # doubling in a row
        (0.2, 1.0, 0.4),
        (16.0, 0.0, 30.0),  # up to the ceiling
        (30.0, 0.0, 30.0),
        (30.0, 60.0, 0.1),  # a body that ran fine for a while starts again from the first
        (8.0, 59.9, 16.0),
    ],
)
def test_backoff_doubles_up_to_its_ceiling_and_resets_after_a_good_run(
    previous: float | None, ran_for: float, expected: float
) -> None:
    backoff = Backoff(first=0.1, ceiling=30.0, reset_after=60.0)
    assert backoff.next_delay(previous, ran_for) == pytest.approx(expected)


def _health() -> LoopHealth:
    return WorkerHealth().loop("test", stale_after=60)


async def test_a_crashing_loop_is_logged_with_its_traceback_and_restarted_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    slept: list[float] = []
    health = _health()

    async def body() -> None:
        runs.append(1)
        if len(runs) <= 3:
            raise RuntimeError(f"bug number {len(runs)}")
        # the fourth run ends on purpose: supervise returns

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with caplog.at_level(logging.INFO, logger="service.supervise"):
        await supervise("test", body, health=health, sleep=sleep)
    assert len(runs) == 4
    assert slept == pytest.approx([0.1, 0.2, 0.4])
    crashes = [r for r in caplog.records if getattr(r, "action", "") == "worker.loop_crashed"]
    assert len(crashes) == 3
    assert all(r.levelno == logging.ERROR and r.exc_info for r in crashes)
    assert "bug number 1" in caplog.text  # the traceback names the error
    assert health.restarts == 3
    assert health.failures_in_a_row == 3 and health.last_error == "RuntimeError: bug number 3"


async def test_a_storage_failure_is_a_warning_with_its_own_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    slept: list[float] = []

    async def body() -> None:
        runs.append(1)
        if len(runs) <= 5:
            raise StorageError("database is away")

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with caplog.at_level(logging.INFO, logger="service.supervise"):
        await supervise("test", body, health=_health(), sleep=sleep)
    assert slept == pytest.approx([0.5, 1.0, 2.0, 4.0, 5.0])  # back soon after the database
    failed = [r for r in caplog.records if getattr(r, "action", "") == "worker.loop_storage_failed"]
    assert len(failed) == 5
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in failed)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_backoff_resets_once_the_body_ran_fine_for_a_while() -> None:
    clock = FakeClock()
    slept: list[float] = []
    runs: list[int] = []

    async def body() -> None:
        runs.append(1)
        if len(runs) == 3:
            clock.now += 120  # the third run works for two minutes before it fails
        if len(runs) <= 4:
            raise RuntimeError("bug")

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    await supervise("test", body, health=_health(), sleep=sleep, clock=clock)
    assert slept == pytest.approx([0.1, 0.2, 0.1, 0.2])


async def test_cancellation_stops_a_supervised_loop() -> None:
    started = asyncio.Event()

    async def body() -> None:
        started.set()
        await asyncio.sleep(3600)

    loop = asyncio.create_task(supervise("test", body, health=_health()))
    await asyncio.wait_for(started.wait(), 5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_a_loop_restarts_for_real_and_beats_again() -> None:
    health = _health()
    beats: list[int] = []

    async def body() -> None:
        while True:
            await asyncio.sleep(0.001)
            if health.restarts == 0 and len(beats) == 2:
                raise RuntimeError("once")
            health.beat()
            beats.append(1)
            if len(beats) == 5:
                return

    await asyncio.wait_for(supervise("test", body, health=health), 5)
    assert health.restarts == 1
    assert health.failures_in_a_row == 0  # beating again since
    assert health.problem() is None


# --- the worker's health ---------------------------------------------------------------------


def test_a_worker_can_run_while_its_loops_beat() -> None:
    clock = FakeClock()
    health = WorkerHealth(clock=clock)
    health.running = True
    loop = health.loop("lease", stale_after=10)
    clock.now += 9
    assert health.problem() is None and health.up
    loop.beat()
    clock.now += 9
    assert health.up


def test_a_loop_that_does_not_beat_means_the_worker_cannot_run() -> None:
    clock = FakeClock()
    health = WorkerHealth(clock=clock)
    health.running = True
    health.loop("lease", stale_after=10)
    clock.now += 11
    problem = health.problem()
    assert problem is not None and "lease" in problem and "11s" in problem
    assert not health.up


def test_one_failure_is_not_a_crash_loop_but_two_in_a_row_are() -> None:
    health = WorkerHealth()
    health.running = True
    loop = health.loop("renew", stale_after=60)
    loop.failed("RuntimeError: boom")
    assert health.up  # restarted at once, it may well run
    loop.failed("RuntimeError: boom")
    problem = health.problem()
    assert problem is not None and "renew" in problem and "RuntimeError: boom" in problem
    loop.beat()  # a round completed: it runs again
    assert health.up


@pytest.mark.parametrize(
    ("failing_for", "up"),
    [(0.0, True), (4.9, True), (5.1, False), (60.0, False)],
)
def test_leasing_may_fail_for_a_few_seconds_before_the_worker_is_not_ready(
    failing_for: float, up: bool
) -> None:
    clock = FakeClock()
    health = WorkerHealth(clock=clock, storage_grace=5.0)
    health.running = True
    health.lease_failed("database is locked")
    clock.now += failing_for
    assert health.up is up
    if not up:
        assert "database is locked" in (health.problem() or "")
    health.lease_succeeded()
    assert health.up


def test_a_worker_that_is_not_running_cannot_run() -> None:
    assert WorkerHealth().problem() == "the worker is not running"
