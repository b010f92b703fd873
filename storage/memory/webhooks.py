"""Outgoing webhooks in the in-memory backend: endpoints, deliveries and their attempts.

A mixin of :class:`storage.memory.backend.MemoryStorage`, whose lock, jobs and wake-up it shares:
every method keeps the promises of the SQL backends (atomic under the one lock, copies in and out,
cascades on delete), and writes what the dispatch of an event makes (``record_dispatch``).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from service.errors import StorageError
from storage.base import JobEnd
from storage.records import (
    AttemptOutcome,
    DeliveryAttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointEventRecord,
    EventDispatch,
    EventRecord,
    JobRecord,
    JobStatus,
    WebhookEndpointRecord,
)

_R = TypeVar("_R")
_FINISHED_JOBS = (JobStatus.SUCCEEDED, JobStatus.FAILED)


def _stored(record: _R) -> _R:
    """A private copy to keep; JSON-checked like every JSON column of the SQL backends."""
    try:
        json.dumps(getattr(record, "events", None))
    except (TypeError, ValueError) as exc:
        raise StorageError(f"value is not JSON-serialisable: {exc}") from exc
    return copy.deepcopy(record)


def _out(records: Iterable[_R]) -> list[_R]:
    return [copy.deepcopy(record) for record in records]


class MemoryWebhooks:
    # the state of MemoryStorage this mixin reads and writes
    _lock: asyncio.Lock
    _jobs: dict[str, JobRecord]
    _events: dict[str, EventRecord]
    _jobs_added: asyncio.Event
    _endpoints: dict[str, WebhookEndpointRecord]
    _endpoint_events: dict[str, EndpointEventRecord]
    _deliveries: dict[str, DeliveryRecord]
    _attempts: list[DeliveryAttemptRecord]

    def _check_open(self) -> None:
        raise NotImplementedError

    def _end_held_job(self, end: JobEnd) -> bool:
        raise NotImplementedError

    def _jobs_to_insert(
        self, jobs: Sequence[JobRecord], extra_task_ids: Collection[str] = ()
    ) -> list[JobRecord]:
        raise NotImplementedError

    def _insert_jobs(self, jobs: Iterable[JobRecord]) -> None:
        raise NotImplementedError

    async def record_dispatch(self, dispatch: EventDispatch, job_end: JobEnd | None = None) -> None:
        async with self._lock:
            self._check_open()
            if dispatch.event.id in self._events:  # else gone with its task: nothing to pass on
                self._write_dispatch(dispatch)
            if job_end is not None:
                self._end_held_job(job_end)

    def _write_dispatch(self, dispatch: EventDispatch) -> None:
        """Validated first, then all written, as the SQL backends' one transaction."""
        delivered = {(d.event_id, d.endpoint_id) for d in self._deliveries.values()}
        deliveries, delivery_jobs = [], []
        for delivery, job in dispatch.deliveries:
            pair = (delivery.event_id, delivery.endpoint_id)
            if pair in delivered or delivery.endpoint_id not in self._endpoints:
                continue
            delivered.add(pair)
            deliveries.append(_stored(delivery))
            delivery_jobs.append(job)
        jobs = self._jobs_to_insert([*dispatch.handler_jobs, *delivery_jobs])
        for delivery in deliveries:
            self._deliveries[delivery.id] = delivery
        self._insert_jobs(jobs)

    def _forget_deliveries(self, doomed: Callable[[DeliveryRecord], bool]) -> None:
        gone = {d.id for d in self._deliveries.values() if doomed(d)}
        self._deliveries = {k: d for k, d in self._deliveries.items() if k not in gone}
        self._attempts = [a for a in self._attempts if a.delivery_id not in gone]

    async def create_endpoint(self, endpoint: WebhookEndpointRecord) -> None:
        async with self._lock:
            self._check_open()
            if endpoint.id in self._endpoints:
                raise StorageError(f"endpoint {endpoint.id!r} already exists")
            self._endpoints[endpoint.id] = _stored(endpoint)

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpointRecord | None:
        async with self._lock:
            self._check_open()
            return copy.deepcopy(self._endpoints.get(endpoint_id))

    async def list_endpoints(self) -> list[WebhookEndpointRecord]:
        async with self._lock:
            self._check_open()
            return _out(self._endpoints.values())

    async def update_endpoint(
        self, endpoint: WebhookEndpointRecord, events: Sequence[EndpointEventRecord] = ()
    ) -> bool:
        async with self._lock:
            self._check_open()
            current = self._endpoints.get(endpoint.id)
            if current is None or current.version != endpoint.version:
                return False
            stored = _stored(endpoint)
            stored.version += 1
            self._endpoints[endpoint.id] = stored
            for event in events:
                self._endpoint_events[event.id] = _stored(event)
            endpoint.version = stored.version
            return True

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        async with self._lock:
            self._check_open()
            if self._endpoints.pop(endpoint_id, None) is None:
                return False
            self._endpoint_events = {
                k: e for k, e in self._endpoint_events.items() if e.endpoint_id != endpoint_id
            }
            self._forget_deliveries(lambda d: d.endpoint_id == endpoint_id)
            return True

    async def list_endpoint_events(self, endpoint_id: str) -> list[EndpointEventRecord]:
        async with self._lock:
            self._check_open()
            return _out(e for e in self._endpoint_events.values() if e.endpoint_id == endpoint_id)

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        async with self._lock:
            self._check_open()
            return copy.deepcopy(self._deliveries.get(delivery_id))

    async def list_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        task_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[DeliveryRecord]:
        async with self._lock:
            self._check_open()
            found = [
                d
                for d in self._deliveries.values()
                if (endpoint_id is None or d.endpoint_id == endpoint_id)
                and (task_id is None or d.task_id == task_id)
                and (status is None or d.status == status)
                and (before is None or (d.created_at, d.id) < before)
            ]
            found.sort(key=lambda d: (d.created_at, d.id), reverse=True)
            return _out(found[: max(limit, 0)])

    async def list_delivery_attempts(
        self, delivery_ids: Collection[str]
    ) -> list[DeliveryAttemptRecord]:
        async with self._lock:
            self._check_open()
            wanted = set(delivery_ids)
            return _out(a for a in self._attempts if a.delivery_id in wanted)

    async def record_delivery_attempt(
        self, outcome: AttemptOutcome, job_end: JobEnd | None = None
    ) -> bool:
        async with self._lock:
            self._check_open()
            disabled = self._record_attempt(outcome)
            if job_end is not None:
                self._end_held_job(job_end)
            return disabled

    def _record_attempt(self, outcome: AttemptOutcome) -> bool:
        delivery = outcome.delivery
        if delivery.id not in self._deliveries:
            return False  # deleted with its endpoint meanwhile: nothing left to record
        endpoint = self._endpoints.get(delivery.endpoint_id)
        self._attempts.append(_stored(outcome.attempt))
        self._deliveries[delivery.id] = _stored(delivery)
        if endpoint is None:
            return False
        if outcome.endpoint_failing:
            if endpoint.failing_since is None:
                endpoint.failing_since = outcome.attempt.attempted_at
                endpoint.version += 1
        elif endpoint.failing_since is not None:
            endpoint.failing_since = None
            endpoint.version += 1
        disable = outcome.disable
        if disable is None or not endpoint.enabled:
            return False
        endpoint.enabled = False
        endpoint.disabled_reason = disable.message
        endpoint.updated_at = disable.timestamp
        endpoint.version += 1
        self._endpoint_events[disable.id] = _stored(disable)
        return True

    async def retry_delivery(self, delivery_id: str, *, now: datetime) -> DeliveryRecord | None:
        async with self._lock:
            self._check_open()
            delivery = self._deliveries.get(delivery_id)
            if delivery is None or delivery.status == DeliveryStatus.PENDING:
                return None
            job = self._jobs.get(delivery.job_id)
            if job is None or job.status not in _FINISHED_JOBS:
                return None
            delivery.status = DeliveryStatus.PENDING
            delivery.round_attempts = 0
            delivery.next_attempt_at = now
            delivery.updated_at = now
            # as requeue_job: lease_token is kept, it must only ever grow
            job.status = JobStatus.QUEUED
            job.run_at = now
            job.attempts = 0
            job.lease_expires_at = None
            job.updated_at = now
            self._jobs_added.set()
            return copy.deepcopy(delivery)
