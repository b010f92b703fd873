"""Events of the contract, and the handler runs each one causes.

An event is written in the same transaction as the state change that causes it, together with
one durable ``handler`` job per subscribed handler, so a crash can lose neither.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from handlers.registry import HandlerRegistry
from service.ids import new_id
from service.jobs.kinds import HANDLER, new_job
from service.views import task_json, video_json
from storage.records import EventRecord, JobRecord, TaskRecord, VideoRecord

TASK_QUEUED = "task.queued"  # waits for a free provider slot (service.submit.admission)
TASK_SUBMITTED = "task.submitted"
TASK_PROCESSING = "task.processing"
TASK_SUCCEEDED = "task.succeeded"
TASK_FAILED = "task.failed"
VIDEO_DOWNLOADED = "video.downloaded"
VIDEO_DOWNLOAD_FAILED = "video.download_failed"
TASK_COMPLETED = "task.completed"
TASK_TIMED_OUT = "task.timed_out"  # no final state within OMNIHOOK_TASK_DEADLINE
BUDGET_THRESHOLD = "budget.threshold"  # spending reached 50, 80 or 100 % of a budget


class EventEmitter:
    """Builds event records and their handler jobs; writes nothing itself."""

    def __init__(self, registry: HandlerRegistry, media_dir: Path) -> None:
        self._registry = registry
        self._media_dir = media_dir

    def emit(
        self,
        event_type: str,
        *,
        task: TaskRecord,
        videos: list[VideoRecord],
        now: datetime,
        video: VideoRecord | None = None,
        generation: str | None = None,
        budget: dict[str, Any] | None = None,
    ) -> tuple[EventRecord, list[JobRecord]]:
        """``task`` and ``videos`` are the state *after* the change the event announces.

        ``generation`` names a video's story told again (a re-download by hand): its events get
        keys of their own, so they are announced although the first story's were. ``budget``:
        a ``budget.threshold`` event's budget, window and level (its ``key`` tells them apart:
        one event per window and level), on the task whose submission reached it."""
        data = {"task": task_json(task, videos, self._media_dir)}
        key = event_type
        if budget is not None:
            data["budget"] = budget
            key = f"{event_type}:{budget['window']}:{budget['level']}"
        if video is not None:
            data["video"] = video_json(video, self._media_dir)
            key = f"{event_type}:{video.index}"
            if generation is not None:
                key = f"{key}:{generation}"
        event = EventRecord(
            id=new_id("evt"), task_id=task.id, type=event_type, key=key, timestamp=now, data=data
        )
        jobs = [
            new_job(
                HANDLER,
                {"event_id": event.id, "event_type": event_type, "handler": handler.name},
                now=now,
                task_id=task.id,
                dedupe_key=f"handler:{task.id}:{key}:{handler.name}",
            )
            for handler in self._registry.handlers_for(event_type)
        ]
        return event, jobs
