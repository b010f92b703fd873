"""The rows omnihook keeps: plain dataclasses, shared by every storage backend.

Times are timezone-aware UTC datetimes. JSON columns are plain ``dict`` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TaskStatus(StrEnum):
    QUEUED = "queued"  # waits for a free provider slot (service.submit.admission); nothing sent yet
    PENDING = "pending"  # being sent (or its create's answer was lost): not yet accepted
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DownloadStatus(StrEnum):
    PENDING = "pending"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    FAILED = "failed"


class OutputKind(StrEnum):
    """What one output of a task is: Kling's results may hold images beside videos."""

    VIDEO = "video"
    IMAGE = "image"


class JobStatus(StrEnum):
    QUEUED = "queued"  # waiting for run_at
    RUNNING = "running"  # leased by a worker until lease_expires_at
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up; can be run again by hand


@dataclass
class TaskRecord:
    id: str
    external_task_id: str
    callback_token_hash: str  # sha256 hex of the callback token; the token itself is never stored
    status: TaskStatus
    model_name: str
    request: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    provider_task_id: str | None = None
    status_message: str = ""
    cost: str | None = None
    last_news_at: datetime | None = None  # when the provider last told us anything
    priority: int = 0  # queued tasks are sent highest first, then oldest first
    admitted_at: datetime | None = None  # when it left the queue: its create was sent then
    # What it should cost, before it is sent: {"amount": "0.84", "currency": "USD", "basis": {...}}
    # (service.costs); budgets add up the amounts.
    estimate: dict[str, Any] | None = None
    # What the provider billed, as it said it: final_unit_deduction (also ``cost``),
    # final_balance_deduction, and the newer generation's billing[] items.
    billing: dict[str, Any] | None = None
    version: int = 0  # bumped by every applied TaskChange (compare-and-set)


@dataclass
class VideoRecord:
    """One paid output of a task (a video or, with ``kind`` image, an image) and its files.

    A watermarked copy, when the request asked for one, is the same output in another file: it
    lives on the same row (``watermark_*``) rather than a row of its own, so an index still
    names one output, and ``download_status`` says whether *every* file of the output is stored
    (``downloaded`` only once both are). ``path`` set while the row is still downloading means
    the clean file is stored and the watermarked one is still to come.
    """

    task_id: str
    index: int
    url: str
    updated_at: datetime
    provider_video_id: str | None = None
    duration: str | None = None
    download_status: DownloadStatus = DownloadStatus.PENDING
    size: int | None = None
    sha256: str | None = None
    path: str | None = None  # relative to the media directory
    error: str | None = None
    bytes_received: int = 0  # download progress, for people watching
    bytes_total: int | None = None  # the size announced by the server, when it did
    kind: OutputKind = OutputKind.VIDEO
    watermark_url: str | None = None  # the provider's watermarked copy, when asked for
    watermark_path: str | None = None  # relative to the media directory, once stored
    watermark_size: int | None = None
    watermark_sha256: str | None = None


@dataclass
class EventRecord:
    id: str  # evt_...
    task_id: str
    type: str
    key: str  # unique per task: "task.succeeded", "video.downloaded:0"... (announce once)
    timestamp: datetime
    data: dict[str, Any]


@dataclass
class JobRecord:
    id: str  # job_...
    kind: str
    payload: dict[str, Any]
    run_at: datetime
    created_at: datetime
    updated_at: datetime
    task_id: str | None = None
    dedupe_key: str | None = None  # a second job with the same key is not enqueued
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0  # leases taken so far
    lease_token: int = 0  # fencing token: bumped on every lease
    lease_expires_at: datetime | None = None
    last_error: str | None = None


@dataclass
class NotificationRecord:
    id: str  # ntf_...
    task_id: str
    received_at: datetime
    headers: dict[str, str]
    body: bytes
    outcome: str | None = None  # what processing it changed, once processed
    verification: str | None = None  # how its authenticity was checked ("signature valid"...)


@dataclass
class TaskChange:
    """A state change of one task and everything it causes, applied in one transaction.

    ``task`` is the whole new record; ``task.version`` must still be the version that was read,
    otherwise nothing is written and :meth:`Storage.apply` answers ``False`` (someone else changed
    the task meanwhile: read again and decide again).
    """

    task: TaskRecord
    videos: list[VideoRecord] = field(default_factory=list)  # upserted by (task_id, index)
    # an event whose (task_id, key) is already there is skipped
    events: list[EventRecord] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)  # a dedupe_key already there is skipped
    # Kinds of the task's jobs that this change leaves nothing to do for: those still queued
    # (not running) are marked succeeded with it, e.g. the crash-safety ``submit`` job of a
    # task whose create's outcome this change records.
    settles: tuple[str, ...] = ()


# -- outgoing webhooks -----------------------------------------------------------------------
#
# An endpoint's secret is stored as it is (``whsec_`` + base64): an HMAC can only be computed
# with the key itself, so, unlike callback tokens, it cannot be kept as a hash. Whoever can read
# the database can sign as omnihook; protect it like the secrets themselves. Secrets are kept out
# of ``repr`` and logs, and shown to people once (at creation and on rotation).

DELIVERY_JOB_KIND = "delivery"  # the job that makes a delivery's attempts (service.jobs.kinds)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # attempts are still to be made
    SUCCEEDED = "succeeded"  # a 2xx answer
    FAILED = "failed"  # given up (schedule exhausted, 410, endpoint disabled); retry by hand


@dataclass
class WebhookEndpointRecord:
    id: str  # wh_...
    url: str
    description: str
    events: list[str]  # ["*"] or event types
    enabled: bool
    secret: str = field(repr=False)  # whsec_...; signs every delivery
    created_at: datetime
    updated_at: datetime
    disabled_reason: str | None = None
    # during a rotation the replaced secret signs too, until previous_secret_expires_at
    previous_secret: str | None = field(default=None, repr=False)
    previous_secret_expires_at: datetime | None = None
    failing_since: datetime | None = None  # first failed attempt since the last success
    version: int = 0  # bumped by every write (compare-and-set of update_endpoint)

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


@dataclass
class EndpointEventRecord:
    """Something that happened to an endpoint itself, for its operator (``webhook.disabled``...)."""

    id: str  # wev_...
    endpoint_id: str
    type: str
    timestamp: datetime
    message: str


@dataclass
class DeliveryRecord:
    """One event for one endpoint: created with the event, then attempted until done."""

    id: str  # dlv_...
    event_id: str
    event_type: str
    endpoint_id: str
    task_id: str
    job_id: str  # the durable job that makes the attempts
    created_at: datetime
    updated_at: datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0  # every attempt ever made
    round_attempts: int = 0  # attempts since creation or the last retry by hand (the schedule)
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass
class DeliveryAttemptRecord:
    delivery_id: str
    attempted_at: datetime
    duration_ms: int
    status_code: int | None = None  # None: no answer (refused, timeout, reset)
    error: str | None = None  # None for a success
    response_body: str = ""  # the first bytes of the answer, decoded leniently
    response_truncated: bool = False


@dataclass
class AttemptOutcome:
    """What one attempt changes, written in one transaction by ``record_delivery_attempt``."""

    attempt: DeliveryAttemptRecord
    delivery: DeliveryRecord  # its new state
    # the endpoint's health: a success clears failing_since, a failure sets it unless set
    endpoint_failing: bool
    # when set: disable the endpoint (if still enabled), recording this operator event
    disable: EndpointEventRecord | None = None


def new_delivery(
    event: EventRecord, endpoint_id: str, *, delivery_id: str, job_id: str
) -> tuple[DeliveryRecord, JobRecord]:
    """The delivery of ``event`` to an endpoint, and the job that makes it (due at once; a
    second one for the same pair is skipped by its dedupe key)."""
    now = event.timestamp
    delivery = DeliveryRecord(
        id=delivery_id,
        event_id=event.id,
        event_type=event.type,
        endpoint_id=endpoint_id,
        task_id=event.task_id,
        job_id=job_id,
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
    )
    job = JobRecord(
        id=job_id,
        kind=DELIVERY_JOB_KIND,
        payload={"delivery_id": delivery_id, "endpoint_id": endpoint_id, "event_id": event.id},
        run_at=now,
        created_at=now,
        updated_at=now,
        task_id=event.task_id,
        dedupe_key=f"delivery:{event.id}:{endpoint_id}",
    )
    return delivery, job
