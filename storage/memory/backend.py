"""The in-memory backend: a complete :class:`Storage` that lives as long as the object.

Used by fast unit tests of the domain logic, so it keeps every promise the SQL backends keep:
operations are atomic (validated first, then written, all under one lock), foreign keys and
unique constraints are enforced, JSON fields must be JSON-serialisable, and records go in and
come out as copies so a caller can never change stored state by keeping a reference.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from service.errors import Conflict, StorageError
from storage.admission import (
    CANDIDATES,
    IN_FLIGHT,
    Occupancy,
    SlotLimits,
    choose,
    queue_key,
)
from storage.base import JobEnd, Storage
from storage.memory.copies import out, stored
from storage.memory.jobs import MemoryJobs
from storage.memory.webhooks import MemoryWebhooks
from storage.records import (
    DeliveryAttemptRecord,
    DeliveryRecord,
    EndpointEventRecord,
    EventRecord,
    JobRecord,
    JobStatus,
    NotificationRecord,
    TaskChange,
    TaskRecord,
    TaskStatus,
    VideoRecord,
    WebhookEndpointRecord,
)
from storage.spending import Spending, committed_amount, in_window

_R = TypeVar("_R")

_UNFINISHED = (TaskStatus.SUBMITTED, TaskStatus.PROCESSING)


class MemoryStorage(MemoryJobs, MemoryWebhooks, Storage):
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._open = False
        self._tasks: dict[str, TaskRecord] = {}
        self._videos: dict[tuple[str, int], VideoRecord] = {}
        # dicts keep insertion order: the tie-breaker the SQL backends get from a sequence
        self._events: dict[str, EventRecord] = {}
        self._notifications: dict[str, NotificationRecord] = {}
        self._jobs: dict[str, JobRecord] = {}
        # set whenever jobs are inserted or queued due now; cleared by the waiter it wakes
        self._jobs_added = asyncio.Event()
        # outgoing webhooks (insertion order: oldest first)
        self._endpoints: dict[str, WebhookEndpointRecord] = {}
        self._endpoint_events: dict[str, EndpointEventRecord] = {}
        self._deliveries: dict[str, DeliveryRecord] = {}
        self._attempts: list[DeliveryAttemptRecord] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def ping(self) -> None:
        self._check_open()

    def _check_open(self) -> None:
        if not self._open:
            raise StorageError("storage is not open")

    # -- tasks -------------------------------------------------------------------------------

    async def create_task(self, task: TaskRecord, jobs: Sequence[JobRecord] = ()) -> None:
        async with self._lock:
            self._check_open()
            self._create_locked(task, jobs)

    def _create_locked(self, task: TaskRecord, jobs: Sequence[JobRecord]) -> None:
        for other in self._tasks.values():
            if other.external_task_id == task.external_task_id:
                raise Conflict(f"external_task_id {task.external_task_id!r} already exists")
        if task.id in self._tasks:
            raise StorageError(f"task {task.id!r} already exists")
        if any(t.callback_token_hash == task.callback_token_hash for t in self._tasks.values()):
            raise StorageError("callback_token_hash already exists")
        kept = stored(task, "request", "metadata")
        new_jobs = self._jobs_to_insert(jobs, extra_task_ids={task.id})
        self._tasks[task.id] = kept
        self._insert_jobs(new_jobs)

    async def get_task(self, id_or_external_id: str) -> TaskRecord | None:
        async with self._lock:
            self._check_open()
            task = self._tasks.get(id_or_external_id)
            if task is None:
                task = next(
                    (t for t in self._tasks.values() if t.external_task_id == id_or_external_id),
                    None,
                )
            return copy.deepcopy(task)

    async def get_task_by_token_hash(self, token_hash: str) -> TaskRecord | None:
        async with self._lock:
            self._check_open()
            found = (t for t in self._tasks.values() if t.callback_token_hash == token_hash)
            return copy.deepcopy(next(found, None))

    async def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[TaskRecord]:
        async with self._lock:
            self._check_open()
            tasks = [
                t
                for t in self._tasks.values()
                if (status is None or t.status == status)
                and (before is None or (t.created_at, t.id) < before)
            ]
            tasks.sort(key=lambda t: (t.created_at, t.id), reverse=True)
            return out(tasks[: max(limit, 0)])

    async def list_stale_tasks(self, *, quiet_since: datetime, limit: int) -> list[TaskRecord]:
        def news(task: TaskRecord) -> datetime:
            return task.last_news_at or task.updated_at

        async with self._lock:
            self._check_open()
            stale = [
                t for t in self._tasks.values() if t.status in _UNFINISHED and news(t) < quiet_since
            ]
            stale.sort(key=lambda t: (news(t), t.id))
            return out(stale[: max(limit, 0)])

    async def delete_task(self, task_id: str) -> None:
        async with self._lock:
            self._check_open()
            self._tasks.pop(task_id, None)
            # the cascade of the SQL backends' foreign keys
            self._videos = {k: v for k, v in self._videos.items() if v.task_id != task_id}
            self._events = {k: e for k, e in self._events.items() if e.task_id != task_id}
            self._notifications = {
                k: n for k, n in self._notifications.items() if n.task_id != task_id
            }
            self._jobs = {k: j for k, j in self._jobs.items() if j.task_id != task_id}
            self._forget_deliveries(lambda d: d.task_id == task_id)

    async def apply(self, change: TaskChange) -> bool:
        async with self._lock:
            self._check_open()
            return self._apply_locked(change)

    def _apply_locked(self, change: TaskChange) -> bool:
        """``apply``, the lock held: validated first, then all written."""
        current = self._tasks.get(change.task.id)
        if current is None or current.version != change.task.version:
            return False
        task = stored(change.task, "request", "metadata")
        task.version += 1
        for other in self._tasks.values():
            if other.id == task.id:
                continue
            if other.external_task_id == task.external_task_id:
                raise Conflict(f"external_task_id {task.external_task_id!r} already exists")
            if other.callback_token_hash == task.callback_token_hash:
                raise StorageError("callback_token_hash already exists")
        videos = [stored(v) for v in change.videos]
        self._check_task_refs((v.task_id for v in videos), extra_task_ids={task.id})
        events = self._events_to_insert(change.events, extra_task_ids={task.id})
        jobs = self._jobs_to_insert(change.jobs, extra_task_ids={task.id})
        # everything is valid: write it all
        self._tasks[task.id] = task
        for video in videos:
            self._videos[(video.task_id, video.index)] = video
        for event in events:
            self._events[event.id] = event
        self._insert_jobs(jobs)
        for job in self._jobs.values():
            settled = job.kind in change.settles and job.status == JobStatus.QUEUED
            if settled and job.task_id == task.id:
                job.status, job.updated_at = JobStatus.SUCCEEDED, task.updated_at
        change.task.version = task.version
        return True

    # -- the admission queue ---------------------------------------------------------------

    async def admit_queued(
        self,
        *,
        limits: SlotLimits,
        limit: int,
        plan: Callable[[TaskRecord], TaskChange],
    ) -> list[TaskRecord]:
        async with self._lock:
            self._check_open()
            return self._admit_locked(limits, limit, plan, alone=None)

    def _admit_locked(
        self,
        limits: SlotLimits,
        limit: int,
        plan: Callable[[TaskRecord], TaskChange],
        *,
        alone: str | None,
    ) -> list[TaskRecord]:
        queued = sorted(
            (t for t in self._tasks.values() if t.status == TaskStatus.QUEUED), key=queue_key
        )
        chosen = choose(queued[:CANDIDATES], limits, self._in_flight(), limit=limit, alone=alone)
        changes = [plan(copy.deepcopy(task)) for task in chosen]
        for change in changes:
            if change.task.status == TaskStatus.QUEUED:
                raise StorageError(f"an admission left task {change.task.id!r} queued")
            if not self._apply_locked(change):
                raise StorageError(f"task {change.task.id!r} changed during its admission")
        return out([change.task for change in changes])

    async def submit_task(
        self,
        task: TaskRecord,
        *,
        limits: SlotLimits | None,
        plan: Callable[[TaskRecord], TaskChange],
        spending: Sequence[Spending] = (),
        guard: Callable[[list[Decimal]], None] | None = None,
    ) -> TaskRecord:
        async with self._lock:
            self._check_open()
            if guard is not None:
                guard([self._spent(window) for window in spending])
            self._create_locked(task, ())
            if limits is None:
                return copy.deepcopy(task)
            admitted = self._admit_locked(limits, 1, plan, alone=task.id)
            return admitted[0] if admitted else copy.deepcopy(task)

    async def queue_position(self, task: TaskRecord) -> int:
        async with self._lock:
            self._check_open()
            mine = queue_key(task)
            ahead = (
                t
                for t in self._tasks.values()
                if t.status == TaskStatus.QUEUED and t.id != task.id and queue_key(t) < mine
            )
            return 1 + sum(1 for _ in ahead)

    async def occupancy(self) -> Occupancy:
        async with self._lock:
            self._check_open()
            queued = sum(1 for t in self._tasks.values() if t.status == TaskStatus.QUEUED)
            return Occupancy(queued, self._in_flight())

    async def spending(self, windows: Sequence[Spending]) -> list[Decimal]:
        async with self._lock:
            self._check_open()
            return [self._spent(window) for window in windows]

    def _spent(self, window: Spending) -> Decimal:
        return sum(
            (
                committed_amount(task, billed_counts=window.billed_counts)
                for task in self._tasks.values()
                if in_window(task, window)
            ),
            Decimal(0),
        )

    def _in_flight(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self._tasks.values():
            if task.status in IN_FLIGHT:
                counts[task.model_name] = counts.get(task.model_name, 0) + 1
        return counts

    # -- videos and events -------------------------------------------------------------------

    async def list_videos(self, task_id: str) -> list[VideoRecord]:
        async with self._lock:
            self._check_open()
            videos = [v for v in self._videos.values() if v.task_id == task_id]
            return out(sorted(videos, key=lambda v: v.index))

    async def list_events(self, task_id: str) -> list[EventRecord]:
        async with self._lock:
            self._check_open()
            events = [e for e in self._events.values() if e.task_id == task_id]
            return out(events)  # insertion order: the order the changes were applied

    async def get_event(self, event_id: str) -> EventRecord | None:
        async with self._lock:
            self._check_open()
            return copy.deepcopy(self._events.get(event_id))

    # -- the callback inbox ------------------------------------------------------------------

    async def record_notification(self, notification: NotificationRecord, job: JobRecord) -> None:
        async with self._lock:
            self._check_open()
            if notification.id in self._notifications:
                raise StorageError(f"notification {notification.id!r} already exists")
            self._check_task_refs([notification.task_id])
            kept = stored(notification, "headers")
            jobs = self._jobs_to_insert([job])
            self._notifications[kept.id] = kept
            self._insert_jobs(jobs)

    async def get_notification(self, notification_id: str) -> NotificationRecord | None:
        async with self._lock:
            self._check_open()
            return copy.deepcopy(self._notifications.get(notification_id))

    async def list_notifications(self, task_id: str) -> list[NotificationRecord]:
        async with self._lock:
            self._check_open()
            found = [n for n in self._notifications.values() if n.task_id == task_id]
            return out(sorted(found, key=lambda n: n.received_at))

    async def set_download_progress(
        self, task_id: str, index: int, *, received: int, total: int | None
    ) -> None:
        async with self._lock:
            self._check_open()
            video = self._videos.get((task_id, index))
            if video is not None:
                video.bytes_received = received
                video.bytes_total = total

    async def set_notification_outcome(
        self, notification_id: str, outcome: str, job_end: JobEnd | None = None
    ) -> None:
        async with self._lock:
            self._check_open()
            notification = self._notifications.get(notification_id)
            if notification is not None:  # gone with its task: nothing left to annotate
                notification.outcome = outcome
            if job_end is not None:
                self._end_held_job(job_end)

    # -- validation shared by the writes -----------------------------------------------------

    def _check_task_refs(
        self, task_ids: Iterable[str], extra_task_ids: Collection[str] = ()
    ) -> None:
        for task_id in task_ids:
            if task_id not in self._tasks and task_id not in extra_task_ids:
                raise StorageError(f"FOREIGN KEY constraint failed: no task {task_id!r}")

    def _events_to_insert(
        self, events: Sequence[EventRecord], extra_task_ids: Collection[str]
    ) -> list[EventRecord]:
        """The events that are new; one whose (task_id, key) is already there is skipped."""
        keys = {(e.task_id, e.key) for e in self._events.values()}
        ids = set(self._events)
        fresh = []
        for event in events:
            if (event.task_id, event.key) in keys:
                continue
            if event.id in ids:
                raise StorageError(f"event {event.id!r} already exists")
            self._check_task_refs([event.task_id], extra_task_ids)
            keys.add((event.task_id, event.key))
            ids.add(event.id)
            fresh.append(stored(event, "data"))
        return fresh
