"""Handler runs through the real worker: ``@on(timeout=, retries=)``, the configured defaults,
giving up with the error, and running a failed run again by hand."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers import DoNotRetry, Event, on
from handlers.job import handler_schedule
from handlers.registry import HandlerRegistry
from handlers.runs import retry_handler_run
from service.bootstrap import open_services
from service.services import Services
from service.settings import load_settings
from service.worker.loop import Worker
from service.worker.runners import RUNNERS
from storage.memory.backend import MemoryStorage
from storage.records import JobRecord, JobStatus, TaskChange, TaskStatus
from tests.factories import make_job, make_task

Calls = list[tuple[str, int, float]]  # (handler, attempt, monotonic time it started)


class Remote:
    """What ``broken_until_fixed`` depends on; the test repairs it between runs."""

    fixed = False


@pytest.fixture
def calls() -> Calls:
    return []


@pytest.fixture
def remote() -> Remote:
    return Remote()


@pytest.fixture
def registry(calls: Calls, remote: Remote) -> HandlerRegistry:
    """Handlers that record each attempt, then misbehave in their own way."""
    registry = HandlerRegistry()

    def record(name: str, event: Event) -> None:
        calls.append((name, event.attempt, time.monotonic()))

    @on("task.failed", timeout=0.2, retries=[0, 0])
    async def hangs(event: Event) -> None:
        record("hangs", event)
        await asyncio.sleep(30)

    @on("task.failed")
    async def hangs_by_default(event: Event) -> None:
        record("hangs_by_default", event)
        await asyncio.sleep(30)

    @on("task.failed", retries=[0.3])
    def fails_then_works(event: Event) -> None:
        record("fails_then_works", event)
        if event.attempt == 1:
            raise ConnectionError("the remote end is down")

    @on("task.failed", retries=[])
    def fails_once(event: Event) -> None:
        record("fails_once", event)
        raise ValueError("a single attempt, by design")

    @on("task.failed", retries=[0, 0, 0])
    async def refuses(event: Event) -> None:
        record("refuses", event)
        raise DoNotRetry("the payload is unusable")

    @on("task.failed")
    def broken_until_fixed(event: Event) -> None:
        record("broken_until_fixed", event)
        if not remote.fixed:
            raise RuntimeError("not fixed yet")

    for handler in (hangs, hangs_by_default, fails_then_works, fails_once, refuses):
        registry.register(handler, source="test")
    registry.register(broken_until_fixed, source="test")
    return registry


@pytest.fixture
async def services(tmp_path: Path, registry: HandlerRegistry) -> AsyncIterator[Services]:
    settings = load_settings(
        database_url="memory://",
        media_dir=tmp_path / "media",
        kling_api_key="k",
        handler_timeout=0.3,  # the default for handlers without their own
        handler_retry_schedule="0,0",  # ...and the default schedule: three attempts
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    async with open_services(
        settings, storage=MemoryStorage(), registry=registry, transport=transport
    ) as opened:
        yield opened


async def emit_task_failed(services: Services) -> dict[str, JobRecord]:
    """A failed task and its task.failed event, written as the lifecycle writes them."""
    task = make_task(status=TaskStatus.FAILED)
    await services.storage.create_task(task)
    event, jobs = services.emitter.emit("task.failed", task=task, videos=[], now=services.clock())
    assert await services.storage.apply(TaskChange(task=task, events=[event], jobs=jobs))
    return {job.payload["handler"].rsplit(".", 1)[-1]: job for job in jobs}


async def run_worker_until(services: Services, done: Callable[[], Any], timeout: float) -> None:
    worker = Worker(services, poll_interval=0.01, runners={"handler": RUNNERS["handler"]})
    running = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + timeout
        while not await done():
            assert time.monotonic() < deadline, "the handler runs did not finish in time"
            await asyncio.sleep(0.02)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def finished(services: Services, jobs: dict[str, JobRecord]) -> dict[str, JobRecord]:
    current = {name: await services.storage.get_job(job.id) for name, job in jobs.items()}
    return {name: job for name, job in current.items() if job is not None}


def attempts_of(calls: Calls, name: str) -> list[int]:
    return [attempt for handler, attempt, _ in calls if handler == name]


async def test_timeouts_and_retries_are_honoured_end_to_end(
    services: Services, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = await emit_task_failed(services)
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED}

    async def all_done() -> bool:
        return all(job.status in terminal for job in (await finished(services, jobs)).values())

    await run_worker_until(services, all_done, timeout=10)
    runs = await finished(services, jobs)

    # @on(timeout=0.2, retries=[0, 0]): three attempts, each cut at its own timeout.
    assert attempts_of(calls, "hangs") == [1, 2, 3]
    assert runs["hangs"].status == JobStatus.FAILED and runs["hangs"].attempts == 3
    assert runs["hangs"].last_error == "timed out after 0.2s"
    # No timeout or retries of its own: OMNIHOOK_HANDLER_TIMEOUT and _RETRY_SCHEDULE apply.
    assert attempts_of(calls, "hangs_by_default") == [1, 2, 3]
    assert runs["hangs_by_default"].last_error == "timed out after 0.3s"
    # retries=[0.3]: the second attempt waits its delay (give or take the 10% jitter).
    [(_, _, first), (_, _, second)] = [c for c in calls if c[0] == "fails_then_works"]
    assert second - first >= 0.3 * 0.9
    assert runs["fails_then_works"].status == JobStatus.SUCCEEDED
    # retries=[]: a single attempt, failed with its error.
    assert attempts_of(calls, "fails_once") == [1]
    assert runs["fails_once"].status == JobStatus.FAILED
    assert runs["fails_once"].last_error == "ValueError: a single attempt, by design"
    # DoNotRetry wins over any schedule.
    assert attempts_of(calls, "refuses") == [1]
    assert runs["refuses"].last_error == "DoNotRetry: the payload is unusable"
    # The plugin's author gets the traceback of their failure in the log, pointing at their code.
    [logged] = [
        r
        for r in caplog.records
        if getattr(r, "action", None) == "handler_run.failed" and "fails_once" in r.getMessage()
    ]
    assert logged.exc_info is not None and logged.exc_info[0] is ValueError
    assert traceback.extract_tb(logged.exc_info[2])[-1].name == "fails_once"


async def test_a_failed_run_runs_again_by_hand_from_attempt_one(
    services: Services, calls: Calls, remote: Remote
) -> None:
    jobs = await emit_task_failed(services)
    run_id = jobs["broken_until_fixed"].id

    async def status_is(status: JobStatus) -> bool:
        job = await services.storage.get_job(run_id)
        return job is not None and job.status == status

    await run_worker_until(services, lambda: status_is(JobStatus.FAILED), timeout=10)
    assert attempts_of(calls, "broken_until_fixed") == [1, 2, 3]

    remote.fixed = True
    queued = await retry_handler_run(services, run_id)
    assert (queued.status, queued.attempts) == (JobStatus.QUEUED, 0)
    await run_worker_until(services, lambda: status_is(JobStatus.SUCCEEDED), timeout=10)

    assert attempts_of(calls, "broken_until_fixed") == [1, 2, 3, 1]


@pytest.mark.parametrize(
    ("handler", "delays"),
    [
        ("fails_then_works", (0.3,)),  # its own @on(retries=...)
        ("fails_once", ()),  # retries=[]: no retry at all
        ("hangs_by_default", (0.0, 0.0)),  # none of its own: OMNIHOOK_HANDLER_RETRY_SCHEDULE
        ("no_longer_loaded", (0.0, 0.0)),  # its plugin is gone: the configured schedule
    ],
)
async def test_the_schedule_of_a_run_is_the_handlers_own_else_the_configured_one(
    services: Services, handler: str, delays: tuple[float, ...]
) -> None:
    name = next(
        (h.name for h in services.registry if h.name.endswith(f".{handler}")),
        f"gone:{handler}",
    )
    job = make_job(kind="handler", payload={"event_id": "evt_1", "handler": name})

    schedule = handler_schedule(services, job)

    assert schedule.delays == delays
    assert schedule.jitter == 0.1  # either way, retries of runs that failed together spread out
