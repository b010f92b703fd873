"""The rows omnihook keeps: plain dataclasses, shared by every storage backend.

Times are timezone-aware UTC datetimes. JSON columns are plain ``dict`` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TaskStatus(StrEnum):
    PENDING = "pending"  # stored, not yet accepted by the provider
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DownloadStatus(StrEnum):
    PENDING = "pending"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    FAILED = "failed"


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
    version: int = 0  # bumped by every applied TaskChange (compare-and-set)


@dataclass
class VideoRecord:
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
