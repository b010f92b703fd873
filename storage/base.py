"""The one narrow interface every storage backend implements.

Domain logic (``service/``) lives above it and never sees SQL. Backends: in-memory (fast tests,
a real implementation), SQLite (the embedded default), PostgreSQL (several replicas).
Backend errors are translated to :class:`service.errors.StorageError`, and to its
:class:`service.errors.StorageUnavailable` when the database cannot be reached or used just now
(a lost connection, a write lock held too long, a failing disk, a deleted file: try again); a
duplicate ``external_task_id`` raises :class:`service.errors.Conflict`. Nothing else leaves a
backend's methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from storage.admission import Occupancy, SlotLimits
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
    NotificationRecord,
    TaskChange,
    TaskRecord,
    TaskStatus,
    VideoRecord,
    WebhookEndpointRecord,
)
from storage.spending import Spending


@dataclass(frozen=True)
class JobEnd:
    """How a leased job ends, written in the transaction of its run's own results (see
    ``record_delivery_attempt``) rather than in one of its own afterwards: one commit instead
    of two, and no moment at which the results are stored but the job still looks unfinished.
    Fenced by the lease token exactly like complete_job, retry_job and fail_job: a holder whose
    lease was taken over changes nothing of the job."""

    job_id: str
    lease_token: int
    now: datetime
    status: JobStatus  # SUCCEEDED; QUEUED again (at run_at); or FAILED
    run_at: datetime | None = None  # QUEUED: when it is due again
    error: str | None = None  # QUEUED or FAILED: why

    @property
    def due_at_once(self) -> bool:
        """Whether it puts the job back in the queue due now (a handed-back job): wake a
        worker."""
        return (
            self.status == JobStatus.QUEUED and self.run_at is not None and self.run_at <= self.now
        )

    @classmethod
    def of(
        cls, job: JobRecord, *, now: datetime, retry_at: datetime | None, error: str | None
    ) -> JobEnd:
        """Succeeded (no error), queued again at ``retry_at``, or failed (an error alone)."""
        if error is None:
            return cls(job.id, job.lease_token, now, JobStatus.SUCCEEDED)
        if retry_at is not None:
            return cls(job.id, job.lease_token, now, JobStatus.QUEUED, retry_at, error)
        return cls(job.id, job.lease_token, now, JobStatus.FAILED, error=error)


@dataclass(frozen=True)
class DeliveryParts:
    """A delivery and what its next attempt needs, read together."""

    delivery: DeliveryRecord
    endpoint: WebhookEndpointRecord | None  # None: deleted meanwhile
    event: EventRecord | None  # None: gone with its task


class Storage(ABC):
    # -- lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise StorageError unless the database is usable (readiness): the one this storage
        writes to is still the one it opened (SQLite: the file was neither deleted nor
        replaced), it answers, and a write commits (a one-row ``health`` table, rewritten)."""

    # -- tasks -------------------------------------------------------------------------------

    @abstractmethod
    async def create_task(self, task: TaskRecord, jobs: Sequence[JobRecord] = ()) -> None:
        """Insert a new task (and jobs) in one transaction; Conflict on a duplicate external id."""

    @abstractmethod
    async def get_task(self, id_or_external_id: str) -> TaskRecord | None:
        """A task by its ``id``, or else by its ``external_task_id``."""

    @abstractmethod
    async def get_task_by_token_hash(self, token_hash: str) -> TaskRecord | None: ...

    @abstractmethod
    async def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[TaskRecord]:
        """Newest first (created_at, then id, descending); ``before`` is the keyset cursor
        (created_at, id) of the last task of the previous page."""

    @abstractmethod
    async def list_stale_tasks(self, *, quiet_since: datetime, limit: int) -> list[TaskRecord]:
        """Unfinished tasks (submitted/processing) with no news since ``quiet_since``
        (``last_news_at``, or ``updated_at`` when never heard of), oldest news first."""

    @abstractmethod
    async def delete_task(self, task_id: str) -> None:
        """Remove a task and everything that belongs to it (a submission the provider refused)."""

    @abstractmethod
    async def apply(self, change: TaskChange) -> bool:
        """Write a task change atomically if ``change.task.version`` is still current.

        On success the stored version becomes ``change.task.version + 1`` (and so does the
        attribute of ``change.task``); answers False and writes nothing otherwise.
        """

    # -- the admission queue (storage.admission) -------------------------------------------

    @abstractmethod
    async def admit_queued(
        self,
        *,
        limits: SlotLimits,
        limit: int,
        plan: Callable[[TaskRecord], TaskChange],
    ) -> list[TaskRecord]:
        """Take queued tasks out of the queue while ``limits`` leave room, at most ``limit``.

        In one transaction that no other admission (of any process) runs beside: count the
        tasks in flight per model, choose the next queued ones (``choose_admitted``, in queue
        order: priority, highest first, then oldest) and write ``plan(task)`` for each, a
        change of the task as read that takes it out of the queue (with its jobs). ``plan`` is
        pure: it may be called again for the same task (a retried transaction). Answers the
        admitted tasks as written (their version bumped)."""

    @abstractmethod
    async def submit_task(
        self,
        task: TaskRecord,
        *,
        limits: SlotLimits | None,
        plan: Callable[[TaskRecord], TaskChange],
        spending: Sequence[Spending] = (),
        guard: Callable[[list[Decimal]], None] | None = None,
    ) -> TaskRecord:
        """Insert a new ``queued`` task and, in the same transaction, admit it alone (as
        ``admit_queued`` would, but that task only) when ``limits`` leave room for it and
        every task before it (``choose_admitted_alone``: no newer task passes an older one
        while room is short); ``limits`` None: it stays queued (admissions are held back). So
        no worker ever admits a task its own submission is about to. Answers the task as stored;
        Conflict on a duplicate external id.

        First, in that transaction and serialised against every other submission, each of
        ``spending`` is added up (:mod:`storage.spending`, the new task not counted) and
        ``guard`` is called with the sums: an :class:`~service.errors.OmnihookError` it
        raises (a budget exceeded) writes nothing and reaches the caller. ``guard`` may be
        called again (a retried transaction); its last call saw what was written."""

    @abstractmethod
    async def spending(self, windows: Sequence[Spending]) -> list[Decimal]:
        """What each window has spent (:mod:`storage.spending`'s rule), as committed now."""

    @abstractmethod
    async def queue_position(self, task: TaskRecord) -> int:
        """Where a queued task stands in the queue: 1 is the next to go."""

    @abstractmethod
    async def occupancy(self) -> Occupancy:
        """How many tasks are queued, and how many in flight per model."""

    # -- videos and events -------------------------------------------------------------------

    @abstractmethod
    async def set_download_progress(
        self, task_id: str, index: int, *, received: int, total: int | None
    ) -> None:
        """Record how far a download got (for display only: no version bump, no event)."""

    @abstractmethod
    async def list_videos(self, task_id: str) -> list[VideoRecord]:
        """By index."""

    @abstractmethod
    async def list_events(self, task_id: str) -> list[EventRecord]:
        """In the order they were written. Changes of one task are serialised by its version,
        so this is the order of the task's story, whatever the clocks of several processes say."""

    @abstractmethod
    async def get_event(self, event_id: str) -> EventRecord | None: ...

    # -- the callback inbox ------------------------------------------------------------------

    @abstractmethod
    async def record_notification(self, notification: NotificationRecord, job: JobRecord) -> None:
        """Store a received notification and the job that will process it, in one transaction."""

    @abstractmethod
    async def get_notification(self, notification_id: str) -> NotificationRecord | None: ...

    @abstractmethod
    async def list_notifications(self, task_id: str) -> list[NotificationRecord]:
        """Oldest first."""

    @abstractmethod
    async def set_notification_outcome(
        self, notification_id: str, outcome: str, job_end: JobEnd | None = None
    ) -> None:
        """Note what processing the notification changed (nothing when it is gone with its
        task). With ``job_end`` (the end of the inbox job that processed it, fenced by its
        lease), in one transaction: the outcome and the job's end are one commit, and a
        notification is never seen processed by a job still looking unfinished."""

    # -- durable jobs ------------------------------------------------------------------------

    @abstractmethod
    async def enqueue(self, jobs: Sequence[JobRecord]) -> None:
        """Insert jobs; one whose dedupe_key is already taken is skipped silently."""

    @abstractmethod
    async def lease_jobs(
        self,
        *,
        now: datetime,
        lease_seconds: float,
        limit: int,
        kinds: Collection[str] | None = None,
    ) -> list[JobRecord]:
        """Take up to ``limit`` due jobs: queued with ``run_at <= now``, or running with an
        expired lease (its worker died). Each comes back running, with ``attempts + 1``, a new
        ``lease_token`` and ``lease_expires_at = now + lease_seconds``; no two concurrent callers
        get the same job. Oldest ``run_at`` first."""

    @abstractmethod
    async def renew_lease(
        self, job_id: str, lease_token: int, *, now: datetime, lease_seconds: float
    ) -> bool:
        """Extend a lease; False when the lease was lost (token changed or job finished)."""

    @abstractmethod
    async def complete_job(self, job_id: str, lease_token: int, *, now: datetime) -> bool:
        """Mark succeeded; False (and nothing written) when the lease token is stale."""

    @abstractmethod
    async def retry_job(
        self, job_id: str, lease_token: int, *, now: datetime, run_at: datetime, error: str
    ) -> bool:
        """Back to queued until ``run_at``, recording the error; False when the token is stale."""

    @abstractmethod
    async def fail_job(self, job_id: str, lease_token: int, *, now: datetime, error: str) -> bool:
        """Give up: mark failed with the error; False when the token is stale."""

    @abstractmethod
    async def requeue_job(self, job_id: str, *, now: datetime) -> bool:
        """Run a finished (failed or succeeded) job again from now, attempts reset to 0;
        False when the job does not exist or is queued/running."""

    @abstractmethod
    async def get_job(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    async def list_jobs(self, *, task_id: str, kind: str | None = None) -> list[JobRecord]:
        """A task's jobs, oldest first."""

    @abstractmethod
    async def next_job_due(self) -> datetime | None:
        """The earliest run_at of a queued job (or lease expiry of a running one): how long a
        worker may sleep."""

    @abstractmethod
    async def wait_for_jobs(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return when new jobs may be due, or after ``timeout`` seconds.

        A wake-up for workers in *any* process: jobs inserted, or put back in the queue due
        now, by another process sharing the database (PostgreSQL: ``LISTEN/NOTIFY``; SQLite: a
        short poll; memory: this object's own writes). A spurious return is allowed, a missed
        one is only late by ``timeout``. Never raises for a lost connection: it waits instead.
        """

    # -- passing events on (service.dispatch) ----------------------------------------------

    @abstractmethod
    async def record_dispatch(self, dispatch: EventDispatch, job_end: JobEnd | None = None) -> None:
        """Write what one event causes, in one transaction: its handler jobs (a dedupe_key
        already taken is skipped) and each delivery with its job, skipped together when the
        (event, endpoint) pair already has a delivery or the endpoint is gone; and
        ``job_end``, the end of the dispatch job (fenced by its lease; the rest is written even
        when the lease was lost). So a dispatch run again writes nothing twice. Wakes the
        workers (of any process) when it added jobs."""

    # -- outgoing webhooks -------------------------------------------------------------------
    #
    # Deliveries are made by ``record_dispatch``: one DeliveryRecord and one ``delivery`` job
    # (dedupe key ``delivery:{event}:{endpoint}``) per pair, never two for the same pair.

    @abstractmethod
    async def create_endpoint(self, endpoint: WebhookEndpointRecord) -> None: ...

    @abstractmethod
    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpointRecord | None: ...

    @abstractmethod
    async def list_endpoints(self) -> list[WebhookEndpointRecord]:
        """Oldest first."""

    @abstractmethod
    async def update_endpoint(
        self, endpoint: WebhookEndpointRecord, events: Sequence[EndpointEventRecord] = ()
    ) -> bool:
        """Write the endpoint if ``endpoint.version`` is still current (compare-and-set; the
        stored and the given version then become ``version + 1``), with operator events;
        False and nothing written otherwise."""

    @abstractmethod
    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove an endpoint with its deliveries, their attempts and its operator events;
        False when there was none. Jobs of its deliveries find nothing left to do."""

    @abstractmethod
    async def list_endpoint_events(self, endpoint_id: str) -> list[EndpointEventRecord]:
        """Oldest first."""

    @abstractmethod
    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None: ...

    async def get_delivery_parts(self, delivery_id: str) -> DeliveryParts | None:
        """The delivery with its endpoint and its event; None when there is no such delivery.
        This reads them one after the other; a backend may read them in one query."""
        delivery = await self.get_delivery(delivery_id)
        if delivery is None:
            return None
        endpoint = await self.get_endpoint(delivery.endpoint_id)
        return DeliveryParts(delivery, endpoint, await self.get_event(delivery.event_id))

    @abstractmethod
    async def list_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        task_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[DeliveryRecord]:
        """Newest first (created_at, then id, descending); ``before`` is the keyset cursor."""

    @abstractmethod
    async def list_delivery_attempts(
        self, delivery_ids: Collection[str]
    ) -> list[DeliveryAttemptRecord]:
        """The attempts of these deliveries, oldest first."""

    @abstractmethod
    async def record_delivery_attempt(
        self, outcome: AttemptOutcome, job_end: JobEnd | None = None
    ) -> bool:
        """Store an attempt, the delivery's new state and the endpoint's health in one
        transaction, with ``job_end`` (the end of the delivery's job, fenced by its lease; it
        is written even when the delivery is gone meanwhile). Answers True when this call
        disabled the endpoint (``outcome.disable`` and it was still enabled: the operator
        event is then stored too)."""

    @abstractmethod
    async def retry_delivery(self, delivery_id: str, *, now: datetime) -> DeliveryRecord | None:
        """Make a finished (failed or succeeded) delivery pending again, due now, its schedule
        from the start, and queue its job again, in one transaction. None when the delivery
        or its job is not finished (or does not exist): nothing is written."""
