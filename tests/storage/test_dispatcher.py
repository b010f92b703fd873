"""The dispatcher (``dispatch`` jobs) on every backend: which handler runs and deliveries an
event gets, and that running it again, after a crash or by hand, creates nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from handlers import Event, on
from handlers.registry import HandlerRegistry
from service.bootstrap import open_services
from service.dispatch.job import dispatch_event, dispatch_schedule, run_dispatch
from service.jobs.outcome import Ended, RetryLater
from service.services import Services
from service.settings import load_settings
from storage.records import EventRecord, JobRecord, JobStatus, TaskChange, TaskRecord
from tests.factories import T0, at, make_event, make_task
from tests.storage.conftest import Backend
from tests.storage.test_webhooks import make_endpoint


@on("task.failed")
def on_failure(event: Event) -> None:
    """Subscribed to the event the tests emit."""


@on("*")
def on_everything(event: Event) -> None:
    """Subscribed to every event."""


@on("task.succeeded")
def on_success(event: Event) -> None:
    """Not subscribed to it."""


@pytest.fixture
async def services(backend: Backend, tmp_path: Path) -> AsyncIterator[Services]:
    registry = HandlerRegistry()
    for handler in (on_failure, on_everything, on_success):
        registry.register(handler, source="test")
    settings = load_settings(
        isolated=True, database_url="memory://", media_dir=tmp_path / "media", kling_api_key="k"
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    async with open_services(
        settings, storage=backend.new(), registry=registry, transport=transport
    ) as opened:
        opened.clock = lambda: at(5)
        yield opened


async def _emit(services: Services) -> tuple[TaskRecord, EventRecord]:
    """``task.failed`` of a new task, written by the state machine's emitter."""
    task = make_task()
    await services.storage.create_task(task)
    event, dispatch = services.emitter.emit("task.failed", task=task, videos=[], now=at(1))
    assert await services.storage.apply(TaskChange(task, events=[event], jobs=[dispatch]))
    return task, event


async def _lease(services: Services, *, now: float = 2) -> JobRecord:
    [job] = await services.storage.lease_jobs(
        now=at(now), lease_seconds=30, limit=1, kinds=["dispatch"]
    )
    return job


async def _made(services: Services, task: TaskRecord) -> tuple[list[str], list[str]]:
    """The handlers with a run, and the endpoints with a delivery (each with its job)."""
    storage = services.storage
    runs = await storage.list_jobs(task_id=task.id, kind="handler")
    deliveries = await storage.list_deliveries(task_id=task.id)
    delivery_jobs = await storage.list_jobs(task_id=task.id, kind="delivery")
    assert sorted(j.id for j in delivery_jobs) == sorted(d.job_id for d in deliveries)
    return (
        sorted(str(job.payload["handler"]).rsplit(":", 1)[-1] for job in runs),
        sorted(delivery.endpoint_id for delivery in deliveries),
    )


async def test_an_event_gets_the_workers_handlers_and_the_endpoints_that_want_it(
    services: Services,
) -> None:
    storage = services.storage
    everything = make_endpoint(id="wh_1_all")
    failures = make_endpoint(id="wh_2_failed", events=["task.failed"])
    successes = make_endpoint(id="wh_3_succeeded", events=["task.succeeded"])
    disabled = make_endpoint(id="wh_4_disabled", enabled=False)
    for endpoint in (everything, failures, successes, disabled):
        await storage.create_endpoint(endpoint)
    task, _ = await _emit(services)
    # created after the event, before its dispatch: it only gets the events from then on
    await storage.create_endpoint(make_endpoint(id="wh_5_later", created_at=at(1.5)))
    job = await _lease(services)

    assert await run_dispatch(services, job) is Ended.RECORDED

    assert await _made(services, task) == (
        ["on_everything", "on_failure"],
        [everything.id, failures.id],
    )
    ended = await storage.get_job(job.id)
    assert ended is not None and ended.status == JobStatus.SUCCEEDED
    assert services.jobs_ready.is_set()  # an in-process worker takes them at once


async def test_an_endpoint_created_at_the_events_very_time_gets_it(services: Services) -> None:
    await services.storage.create_endpoint(make_endpoint(id="wh_same", created_at=at(1)))
    await services.storage.create_endpoint(make_endpoint(id="wh_after", created_at=at(1.001)))
    task, _ = await _emit(services)

    assert await run_dispatch(services, await _lease(services)) is Ended.RECORDED

    assert (await _made(services, task))[1] == ["wh_same"]


async def test_a_dispatch_run_again_by_hand_creates_nothing_twice(services: Services) -> None:
    await services.storage.create_endpoint(make_endpoint(id="wh_all"))
    task, _ = await _emit(services)
    job = await _lease(services)
    await run_dispatch(services, job)
    made = await _made(services, task)
    deliveries = await services.storage.list_deliveries(task_id=task.id)

    assert await services.storage.requeue_job(job.id, now=at(6))
    await run_dispatch(services, await _lease(services, now=7))

    assert await _made(services, task) == made
    assert await services.storage.list_deliveries(task_id=task.id) == deliveries


async def test_a_dispatcher_that_died_after_its_write_is_taken_up_without_duplicates(
    services: Services,
) -> None:
    await services.storage.create_endpoint(make_endpoint(id="wh_all"))
    task, event = await _emit(services)
    first = await _lease(services)
    # its write committed, then its worker died: the end never got written
    await dispatch_event(services, event)
    made = await _made(services, task)

    again = await _lease(services, now=60)  # its lease expired: another worker takes it
    assert again.id == first.id and again.lease_token > first.lease_token
    assert await run_dispatch(services, again) is Ended.RECORDED

    assert await _made(services, task) == made
    done = await services.storage.get_job(first.id)
    assert done is not None and done.status == JobStatus.SUCCEEDED


async def test_the_dispatch_of_an_event_gone_with_its_task_just_ends(services: Services) -> None:
    task, _ = await _emit(services)
    job = await _lease(services)
    await services.storage.delete_task(task.id)

    assert await run_dispatch(services, job) is None  # the worker marks it done


async def test_an_event_of_a_type_this_worker_does_not_know_waits_for_one_that_does(
    services: Services,
) -> None:
    task = make_task()
    await services.storage.create_task(task)
    event = make_event(task.id, type="task.from_the_future", timestamp=at(1))
    assert await services.storage.apply(TaskChange(task, events=[event]))

    with pytest.raises(RetryLater, match="unknown to this worker"):
        await dispatch_event(services, event)
    assert await _made(services, task) == ([], [])


def test_a_dispatch_is_retried_for_as_long_as_it_takes() -> None:
    # it fails only when the database does; giving up would lose the event's runs and deliveries
    job = JobRecord("job_1", "dispatch", {}, T0, T0, T0)
    delays = []
    for attempts in range(1, 40):
        job.attempts = attempts
        delay = dispatch_schedule(None, job).delay_after(attempts)  # type: ignore[arg-type]
        assert delay is not None
        delays.append(delay)
    assert delays[0] < 2 and timedelta(seconds=delays[-1]) >= timedelta(minutes=25)
