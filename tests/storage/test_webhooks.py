"""Outgoing webhooks in storage: endpoints, deliveries made by a dispatch, attempts, retries by
hand. (What ``record_dispatch`` itself promises: tests/storage/test_dispatch.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from service.dispatch.job import plan_dispatch
from service.ids import new_id
from service.webhooks.routing import endpoints_for
from storage.base import JobEnd, Storage
from storage.records import (
    AttemptOutcome,
    DeliveryAttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointEventRecord,
    EventRecord,
    JobRecord,
    JobStatus,
    TaskChange,
    TaskRecord,
    WebhookEndpointRecord,
)
from tests.factories import T0, at, make_event, make_task

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def make_endpoint(**overrides: Any) -> WebhookEndpointRecord:
    fields: dict[str, Any] = {
        "id": new_id("wh"),
        "url": "https://hooks.example.com/omnihook",
        "description": "",
        "events": ["*"],
        "enabled": True,
        "secret": SECRET,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(overrides)
    return WebhookEndpointRecord(**fields)


async def dispatch(storage: Storage, *events: EventRecord) -> None:
    """Write each event's deliveries as the worker's dispatcher does."""
    endpoints = await storage.list_endpoints()
    for event in events:
        chosen = [endpoint.id for endpoint in endpoints_for(event, endpoints)]
        await storage.record_dispatch(plan_dispatch(event, [], chosen))


async def _task(storage: Storage) -> TaskRecord:
    task = make_task()
    await storage.create_task(task)
    return task


async def _deliver_one(storage: Storage) -> tuple[WebhookEndpointRecord, DeliveryRecord]:
    endpoint = make_endpoint()
    await storage.create_endpoint(endpoint)
    task = await _task(storage)
    event = make_event(task.id, type="task.succeeded", key="task.succeeded")
    assert await storage.apply(TaskChange(task, events=[event]))
    await dispatch(storage, event)
    [delivery] = await storage.list_deliveries(endpoint_id=endpoint.id)
    return endpoint, delivery


def _attempt(delivery: DeliveryRecord, seconds: float, code: int | None) -> DeliveryAttemptRecord:
    return DeliveryAttemptRecord(
        delivery_id=delivery.id,
        attempted_at=at(seconds),
        duration_ms=12,
        status_code=code,
        error=None if code == 200 else f"HTTP {code}",
        response_body="x" * 10,
        response_truncated=True,
    )


async def test_endpoints_are_stored_listed_and_their_secret_stays_out_of_repr(
    storage: Storage,
) -> None:
    first = make_endpoint(events=["task.succeeded", "video.downloaded"], description="ci")
    second = make_endpoint(enabled=False, disabled_reason="by hand")
    await storage.create_endpoint(first)
    await storage.create_endpoint(second)

    assert await storage.get_endpoint(first.id) == first
    assert await storage.list_endpoints() == [first, second]
    assert await storage.get_endpoint("wh_missing") is None
    assert SECRET not in repr(first)


async def test_update_endpoint_is_a_compare_and_set_with_operator_events(
    storage: Storage,
) -> None:
    endpoint = make_endpoint()
    await storage.create_endpoint(endpoint)
    stale = dataclasses.replace(endpoint)
    endpoint.enabled, endpoint.disabled_reason = False, "disabled by hand"
    event = EndpointEventRecord(new_id("wev"), endpoint.id, "webhook.disabled", at(1), "by hand")

    assert await storage.update_endpoint(endpoint, [event])
    assert endpoint.version == 1
    stale.description = "lost update"
    assert not await storage.update_endpoint(stale)

    assert await storage.get_endpoint(endpoint.id) == endpoint
    assert await storage.list_endpoint_events(endpoint.id) == [event]


async def test_a_dispatch_delivers_each_event_to_the_endpoints_that_want_it(
    storage: Storage,
) -> None:
    everything = make_endpoint(events=["*"])
    succeeded_only = make_endpoint(events=["task.succeeded"])
    disabled = make_endpoint(enabled=False)
    for endpoint in (everything, succeeded_only, disabled):
        await storage.create_endpoint(endpoint)
    task = await _task(storage)
    processing = make_event(task.id, type="task.processing", key="task.processing")
    succeeded = make_event(task.id, type="task.succeeded", key="task.succeeded", timestamp=at(3))

    assert await storage.apply(TaskChange(task, events=[processing, succeeded]))
    assert await storage.list_deliveries(task_id=task.id) == []  # apply routes nothing itself
    await dispatch(storage, processing, succeeded)

    deliveries = await storage.list_deliveries(task_id=task.id, limit=10)
    pairs = {(d.event_id, d.endpoint_id) for d in deliveries}
    assert pairs == {
        (processing.id, everything.id),
        (succeeded.id, everything.id),
        (succeeded.id, succeeded_only.id),
    }
    for delivery in deliveries:
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
        job = await storage.get_job(delivery.job_id)
        assert job is not None and job.kind == "delivery"
        assert job.dedupe_key == f"delivery:{delivery.event_id}:{delivery.endpoint_id}"
        assert job.payload["delivery_id"] == delivery.id
        assert job.status == JobStatus.QUEUED and job.task_id == task.id
    leased = await storage.lease_jobs(now=at(10), lease_seconds=30, limit=10, kinds=["delivery"])
    assert len(leased) == 3


async def test_an_attempt_is_recorded_with_the_endpoint_health(storage: Storage) -> None:
    endpoint, delivery = await _deliver_one(storage)
    failing = dataclasses.replace(
        delivery, attempts=1, round_attempts=1, last_status_code=500, next_attempt_at=at(20)
    )
    assert not await storage.record_delivery_attempt(
        AttemptOutcome(_attempt(delivery, 10, 500), failing, endpoint_failing=True)
    )
    again = dataclasses.replace(failing, attempts=2, round_attempts=2)
    await storage.record_delivery_attempt(
        AttemptOutcome(_attempt(delivery, 30, 503), again, endpoint_failing=True)
    )
    stored = await storage.get_endpoint(endpoint.id)
    assert stored is not None and stored.failing_since == at(10)  # the first failure counts
    assert await storage.get_delivery(delivery.id) == again

    done = dataclasses.replace(again, status=DeliveryStatus.SUCCEEDED, attempts=3)
    await storage.record_delivery_attempt(
        AttemptOutcome(_attempt(delivery, 40, 200), done, endpoint_failing=False)
    )
    stored = await storage.get_endpoint(endpoint.id)
    assert stored is not None and stored.failing_since is None
    attempts = await storage.list_delivery_attempts([delivery.id])
    assert [a.status_code for a in attempts] == [500, 503, 200]
    assert attempts[0] == _attempt(delivery, 10, 500)


async def test_disabling_through_an_attempt_happens_once(storage: Storage) -> None:
    endpoint, delivery = await _deliver_one(storage)
    failed = dataclasses.replace(delivery, status=DeliveryStatus.FAILED, attempts=1)

    def disable(seconds: float) -> EndpointEventRecord:
        return EndpointEventRecord(
            new_id("wev"), endpoint.id, "webhook.disabled", at(seconds), "410 Gone"
        )

    first = disable(10)
    assert await storage.record_delivery_attempt(
        AttemptOutcome(_attempt(delivery, 10, 410), failed, endpoint_failing=True, disable=first)
    )
    assert not await storage.record_delivery_attempt(
        AttemptOutcome(
            _attempt(delivery, 11, 410), failed, endpoint_failing=True, disable=disable(11)
        )
    )
    stored = await storage.get_endpoint(endpoint.id)
    assert stored is not None
    assert (stored.enabled, stored.disabled_reason) == (False, "410 Gone")
    assert await storage.list_endpoint_events(endpoint.id) == [first]


async def test_a_delivery_is_read_with_its_endpoint_and_event(storage: Storage) -> None:
    endpoint, delivery = await _deliver_one(storage)
    parts = await storage.get_delivery_parts(delivery.id)
    assert parts is not None
    assert parts.delivery == delivery
    assert parts.endpoint == await storage.get_endpoint(endpoint.id)
    assert parts.event is not None and parts.event == await storage.get_event(delivery.event_id)
    assert await storage.get_delivery_parts("dlv_missing") is None


async def _lease_delivery_job(storage: Storage, seconds: float = 1) -> JobRecord:
    [job] = await storage.lease_jobs(now=at(seconds), lease_seconds=60, limit=1)
    assert job.kind == "delivery"
    return job


async def test_an_attempt_ends_its_job_in_the_same_transaction(storage: Storage) -> None:
    _, delivery = await _deliver_one(storage)
    job = await _lease_delivery_job(storage)
    later = dataclasses.replace(
        delivery, attempts=1, round_attempts=1, last_error="HTTP 500", next_attempt_at=at(70)
    )
    again = JobEnd.of(job, now=at(10), retry_at=at(70), error="HTTP 500")
    outcome = AttemptOutcome(_attempt(delivery, 10, 500), later, endpoint_failing=True)
    assert not await storage.record_delivery_attempt(outcome, again)
    stored = await storage.get_job(job.id)
    assert stored is not None
    assert (stored.status, stored.run_at, stored.last_error) == (
        JobStatus.QUEUED,
        at(70),
        "HTTP 500",
    )

    job = await _lease_delivery_job(storage, 70)
    done = dataclasses.replace(later, status=DeliveryStatus.SUCCEEDED, attempts=2)
    outcome = AttemptOutcome(_attempt(delivery, 71, 200), done, endpoint_failing=False)
    await storage.record_delivery_attempt(
        outcome, JobEnd.of(job, now=at(71), retry_at=None, error=None)
    )
    stored = await storage.get_job(job.id)
    assert stored is not None and stored.status == JobStatus.SUCCEEDED
    assert await storage.get_delivery(delivery.id) == done
    assert len(await storage.list_delivery_attempts([delivery.id])) == 2


async def test_a_stale_lease_records_the_attempt_but_not_the_job_end(storage: Storage) -> None:
    _, delivery = await _deliver_one(storage)
    old = await _lease_delivery_job(storage)
    new = await _lease_delivery_job(storage, 100)  # the first lease expired: taken over
    done = dataclasses.replace(delivery, status=DeliveryStatus.SUCCEEDED, attempts=1)
    outcome = AttemptOutcome(_attempt(delivery, 101, 200), done, endpoint_failing=False)
    await storage.record_delivery_attempt(
        outcome, JobEnd.of(old, now=at(101), retry_at=None, error=None)
    )
    stored = await storage.get_job(old.id)
    assert stored is not None
    assert (stored.status, stored.lease_token) == (JobStatus.RUNNING, new.lease_token)
    assert await storage.get_delivery(delivery.id) == done


async def test_the_job_of_a_delivery_gone_meanwhile_still_ends(storage: Storage) -> None:
    endpoint, delivery = await _deliver_one(storage)
    job = await _lease_delivery_job(storage)
    assert await storage.delete_endpoint(endpoint.id)
    done = dataclasses.replace(delivery, status=DeliveryStatus.SUCCEEDED, attempts=1)
    for disable in (
        None,
        EndpointEventRecord(new_id("wev"), endpoint.id, "webhook.disabled", at(2), "gone"),
    ):
        outcome = AttemptOutcome(
            _attempt(delivery, 2, 200), done, endpoint_failing=False, disable=disable
        )
        end = JobEnd.of(job, now=at(2), retry_at=None, error="HTTP 410")
        assert not await storage.record_delivery_attempt(outcome, end)
    assert await storage.list_delivery_attempts([delivery.id]) == []
    stored = await storage.get_job(job.id)
    assert stored is not None and (stored.status, stored.last_error) == (
        JobStatus.FAILED,
        "HTTP 410",
    )


async def test_a_disabling_attempt_ends_its_job_too(storage: Storage) -> None:
    endpoint, delivery = await _deliver_one(storage)
    job = await _lease_delivery_job(storage)
    failed = dataclasses.replace(delivery, status=DeliveryStatus.FAILED, attempts=1)
    event = EndpointEventRecord(new_id("wev"), endpoint.id, "webhook.disabled", at(2), "410 Gone")
    outcome = AttemptOutcome(
        _attempt(delivery, 2, 410), failed, endpoint_failing=True, disable=event
    )
    end = JobEnd.of(job, now=at(2), retry_at=None, error="HTTP 410")
    assert await storage.record_delivery_attempt(outcome, end)
    stored = await storage.get_job(job.id)
    assert stored is not None and stored.status == JobStatus.FAILED
    assert await storage.get_delivery(delivery.id) == failed


async def test_concurrent_attempts_are_each_recorded_with_their_job(storage: Storage) -> None:
    # on SQLite, like writes of one batch share an executemany: each row still lands
    endpoints = [make_endpoint() for _ in range(6)]
    for endpoint in endpoints:
        await storage.create_endpoint(endpoint)
    task = await _task(storage)
    event = make_event(task.id, key="k")
    assert await storage.apply(TaskChange(task, events=[event]))
    await dispatch(storage, event)
    jobs = await storage.lease_jobs(now=at(1), lease_seconds=60, limit=10)
    deliveries = {d.job_id: d for d in await storage.list_deliveries(task_id=task.id)}
    assert len(jobs) == len(deliveries) == 6

    def record(job: JobRecord, n: int) -> Any:
        delivery = deliveries[job.id]
        ok = n % 2 == 0
        state = dataclasses.replace(
            delivery,
            status=DeliveryStatus.SUCCEEDED if ok else DeliveryStatus.PENDING,
            attempts=1,
            last_error=None if ok else "HTTP 500",
            next_attempt_at=None if ok else at(60),
        )
        attempt = _attempt(delivery, 2, 200 if ok else 500)
        end = JobEnd.of(job, now=at(2), retry_at=at(60), error=state.last_error)
        return storage.record_delivery_attempt(AttemptOutcome(attempt, state, not ok), end)

    await asyncio.gather(*(record(job, n) for n, job in enumerate(jobs)))
    for n, job in enumerate(jobs):
        stored = await storage.get_job(job.id)
        assert stored is not None
        assert stored.status == (JobStatus.SUCCEEDED if n % 2 == 0 else JobStatus.QUEUED)
        [attempt] = await storage.list_delivery_attempts([deliveries[job.id].id])
        assert attempt.status_code == (200 if n % 2 == 0 else 500)
    failing = [await storage.get_endpoint(d.endpoint_id) for d in deliveries.values()]
    assert sum(1 for e in failing if e is not None and e.failing_since == at(2)) == 3


async def test_list_deliveries_filters_newest_first_with_a_cursor(storage: Storage) -> None:
    endpoint = make_endpoint()
    other = make_endpoint(events=["task.failed"])
    await storage.create_endpoint(endpoint)
    await storage.create_endpoint(other)
    task = await _task(storage)
    events = [make_event(task.id, key=f"k{n}", timestamp=at(n)) for n in range(5)]
    assert await storage.apply(TaskChange(task, events=events))
    await dispatch(storage, *events)

    page = await storage.list_deliveries(endpoint_id=endpoint.id, limit=2)
    assert [d.event_id for d in page] == [events[4].id, events[3].id]
    rest = await storage.list_deliveries(
        endpoint_id=endpoint.id, limit=10, before=(page[-1].created_at, page[-1].id)
    )
    assert [d.event_id for d in rest] == [e.id for e in reversed(events[:3])]
    assert await storage.list_deliveries(endpoint_id=other.id) == []
    assert await storage.list_deliveries(status=DeliveryStatus.FAILED) == []


async def test_a_finished_delivery_is_retried_by_hand_with_its_job(storage: Storage) -> None:
    _, delivery = await _deliver_one(storage)
    assert await storage.retry_delivery(delivery.id, now=at(50)) is None  # still pending

    [job] = await storage.lease_jobs(now=at(1), lease_seconds=30, limit=1)
    failed = dataclasses.replace(
        delivery, status=DeliveryStatus.FAILED, attempts=8, round_attempts=8
    )
    await storage.record_delivery_attempt(
        AttemptOutcome(_attempt(delivery, 2, 500), failed, endpoint_failing=True)
    )
    assert await storage.retry_delivery(delivery.id, now=at(50)) is None  # job still running
    assert await storage.fail_job(job.id, job.lease_token, now=at(3), error="gave up")

    retried = await storage.retry_delivery(delivery.id, now=at(50))
    assert retried is not None
    assert (retried.status, retried.attempts, retried.round_attempts) == (
        DeliveryStatus.PENDING,
        8,
        0,
    )
    assert retried.next_attempt_at == at(50)
    [again] = await storage.lease_jobs(now=at(50), lease_seconds=30, limit=1)
    assert again.id == job.id and again.attempts == 1 and again.lease_token > job.lease_token


async def test_deleting_an_endpoint_or_a_task_takes_its_deliveries(storage: Storage) -> None:
    endpoint, delivery = await _deliver_one(storage)
    await storage.record_delivery_attempt(
        AttemptOutcome(_attempt(delivery, 1, 500), delivery, endpoint_failing=True)
    )
    assert await storage.delete_endpoint(endpoint.id)
    assert not await storage.delete_endpoint(endpoint.id)
    assert await storage.get_delivery(delivery.id) is None
    assert await storage.list_delivery_attempts([delivery.id]) == []
    # an attempt that ends after the deletion finds nothing to record
    assert not await storage.record_delivery_attempt(
        AttemptOutcome(_attempt(delivery, 2, 200), delivery, endpoint_failing=False)
    )

    _, kept = await _deliver_one(storage)
    await storage.delete_task(kept.task_id)
    assert await storage.get_delivery(kept.id) is None
