"""The simulator's memory: tasks, their outputs and the callbacks sent for them.

Plain in-memory records owned by one app instance; nothing survives a restart, as befits a fake.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum

from .scenario import Scenario


def now_ms() -> int:
    return int(time.time() * 1000)


def new_numeric_id() -> str:
    """An 18-digit numeric string, like Kling's task and video ids."""
    return str(8 * 10**17 + secrets.randbelow(10**17))


class TaskStatus(StrEnum):
    """Kling's own status words (note ``succeed``)."""

    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEED = "succeed"
    FAILED = "failed"

    @property
    def running(self) -> bool:
        return self in (TaskStatus.SUBMITTED, TaskStatus.PROCESSING)


VIDEO = "video"
IMAGE = "image"
_EXTENSIONS = {VIDEO: ".mp4", IMAGE: ".png"}


def media_url(base_url: str, media_id: str, kind: str, key: str | None = None) -> str:
    """A file's URL; like Kling's CDN URLs, it carries a signed-looking query string."""
    key = key or secrets.token_hex(16)
    return f"{base_url}/media/{media_id}{_EXTENSIONS[kind]}?cacheKey={key}"


@dataclass(frozen=True)
class SimVideo:
    """One output: a video or (``kind`` image) an image, and its watermarked copy's URL."""

    id: str
    url: str
    duration: str | None  # None for an image
    kind: str = VIDEO
    watermark_url: str | None = None

    @property
    def watermark_id(self) -> str:
        """The media id of the watermarked copy."""
        return f"{self.id}-watermarked"


@dataclass(frozen=True)
class CallbackRecord:
    """One delivery attempt of one callback."""

    sent_at_ms: int
    state: str
    url: str
    webhook_id: str
    status_code: int | None = None
    error: str | None = None


@dataclass
class SimTask:
    """One task as the simulated provider sees it; mutated only by the simulator."""

    task_id: str
    model_name: str
    scenario: Scenario
    base_url: str
    external_task_id: str | None = None
    gateway_id: str | None = None  # the id a gateway hands out in place of Kling's
    callback_url: str | None = None
    requested_duration: str = "5"
    mode: str = "pro"
    watermark: bool = False  # watermark_info.enabled
    status: TaskStatus = TaskStatus.SUBMITTED
    status_msg: str = ""
    created_at: int = field(default_factory=now_ms)
    updated_at: int = 0
    unit_deduction: str | None = None
    videos: list[SimVideo] = field(default_factory=list)
    callbacks: list[CallbackRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.updated_at:
            self.updated_at = self.created_at

    @property
    def public_id(self) -> str:
        """The id the caller was given: the gateway's own, or Kling's."""
        return self.gateway_id or self.task_id

    def move_to(self, status: TaskStatus, message: str = "") -> None:
        self.status = status
        self.status_msg = message
        self.updated_at = max(now_ms(), self.updated_at)


class DuplicateExternalId(Exception):
    """Another task of the account already uses this ``external_task_id``."""


class TaskStore:
    """Tasks by Kling id, by external id and by the id handed out, newest first when listed."""

    def __init__(self) -> None:
        self._by_id: dict[str, SimTask] = {}
        self._by_external: dict[str, SimTask] = {}
        self._by_public: dict[str, SimTask] = {}
        # The account's concurrency as the provider saw it (GET /_sim/tasks): the most tasks
        # running at once, and the creates refused 1303 for want of a slot.
        self.peak_running = 0
        self.refused_full = 0

    def add(self, task: SimTask) -> None:
        if task.external_task_id is not None and task.external_task_id in self._by_external:
            raise DuplicateExternalId(task.external_task_id)
        while task.task_id in self._by_id:
            task.task_id = new_numeric_id()
        self._by_id[task.task_id] = task
        self._by_public[task.public_id] = task
        if task.external_task_id is not None:
            self._by_external[task.external_task_id] = task
        self.peak_running = max(self.peak_running, self.running_count())

    def has_external_id(self, external_task_id: str) -> bool:
        return external_task_id in self._by_external

    def find(self, ref: str) -> SimTask | None:
        """A task by its ``task_id`` or, failing that, its ``external_task_id``."""
        return self._by_id.get(ref) or self._by_external.get(ref)

    def find_external(self, external_task_id: str) -> SimTask | None:
        return self._by_external.get(external_task_id)

    def find_public(self, ref: str) -> SimTask | None:
        """A task by the id its create answered, and nothing else (a gateway's own lookup)."""
        return self._by_public.get(ref)

    def running_count(self) -> int:
        return sum(1 for task in self._by_id.values() if task.status.running)

    def page(self, page_num: int, page_size: int) -> list[SimTask]:
        newest_first = list(reversed(self._by_id.values()))
        start = (page_num - 1) * page_size
        return newest_first[start : start + page_size]

    def all(self) -> list[SimTask]:
        return list(self._by_id.values())
