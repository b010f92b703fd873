"""Small factories for storage records, shared by every test suite.

Each builds a valid record with unique ids and sensible defaults; pass keyword arguments to
override any field. Times default to ``T0`` (a fixed instant) so tests can reason about them.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from handlers.payloads import TaskData, VideoData
from service.ids import new_id
from service.views import task_json, video_json
from storage.records import (
    EventRecord,
    JobRecord,
    NotificationRecord,
    TaskRecord,
    TaskStatus,
    VideoRecord,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

_counter = itertools.count(1)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``: readable timelines in tests."""
    return T0 + timedelta(seconds=seconds)


def make_task(**overrides: Any) -> TaskRecord:
    n = next(_counter)
    fields: dict[str, Any] = {
        "id": new_id("task"),
        "external_task_id": f"ext-{n}",
        "callback_token_hash": hashlib.sha256(f"token-{n}".encode()).hexdigest(),
        "status": TaskStatus.SUBMITTED,
        "model_name": "kling-video-o1",
        "request": {"prompt": f"a cat, take {n}"},
        "metadata": {},
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(overrides)
    return TaskRecord(**fields)


def make_job(**overrides: Any) -> JobRecord:
    fields: dict[str, Any] = {
        "id": new_id("job"),
        "kind": "test.job",
        "payload": {},
        "run_at": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(overrides)
    return JobRecord(**fields)


def make_event(task_id: str, **overrides: Any) -> EventRecord:
    n = next(_counter)
    fields: dict[str, Any] = {
        "id": new_id("evt"),
        "task_id": task_id,
        "type": "task.processing",
        "key": f"task.processing:{n}",
        "timestamp": T0,
        "data": {},
    }
    fields.update(overrides)
    return EventRecord(**fields)


def make_video(task_id: str, index: int = 0, **overrides: Any) -> VideoRecord:
    fields: dict[str, Any] = {
        "task_id": task_id,
        "index": index,
        "url": f"https://cdn.example.test/{task_id}/{index}.mp4",
        "updated_at": T0,
    }
    fields.update(overrides)
    return VideoRecord(**fields)


def make_notification(task_id: str, **overrides: Any) -> NotificationRecord:
    fields: dict[str, Any] = {
        "id": new_id("ntf"),
        "task_id": task_id,
        "received_at": T0,
        "headers": {"content-type": "application/json"},
        "body": b'{"task_status": "processing"}',
    }
    fields.update(overrides)
    return NotificationRecord(**fields)


class ManualClock:
    """A clock the test moves by hand; starts at ``start`` (default: the real now, so that
    signatures checked against the wall clock still verify)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def task_data(**fields: Any) -> TaskData:
    """A task as an event carries it (``data["task"]``): a stored task's view, ``fields``
    written over it."""
    view = task_json(make_task(), [], Path("/media"))
    view.update(fields)
    return cast(TaskData, view)


def video_data(**fields: Any) -> VideoData:
    """A video as an event carries it (``data["video"]``), ``fields`` written over it."""
    view = video_json(make_video("task_1"), Path("/media"))
    view.update(fields)
    return cast(VideoData, view)
