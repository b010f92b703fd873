"""``inbox`` jobs: apply one stored provider notification to its task.

The same job replays a notification (``POST /v1/notifications/{id}/replay``): every check is
made again against the task as it is now, and the state machine ignores what it already knows,
so a replay can only bring news that was missed, never announce anything twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.apply.lifecycle import Plan, plan_provider_state
from service.clock import isoformat
from service.errors import NotificationInvalid
from service.jobs.outcome import Ended
from service.kling.notification import task_from_document
from service.kling.state import ProviderTaskState
from service.receiver.match import (
    PROBE_OUTCOME,
    as_this_task,
    is_console_probe,
    mismatch,
    read_document,
)
from service.receiver.verify import is_signed
from service.services import Services
from storage.base import JobEnd
from storage.records import JobRecord, TaskRecord, VideoRecord


async def run_inbox(services: Services, job: JobRecord) -> Ended | None:
    notification_id = str(job.payload["notification_id"])
    notification = await services.storage.get_notification(notification_id)
    if notification is None:
        return None
    try:
        document = read_document(notification.body)
        state = task_from_document(document)
    except NotificationInvalid as exc:
        # The receiver checked it; a changed parser could not read it any more.
        return await _record(services, job, notification_id, f"unreadable: {exc}")
    signed = is_signed(notification.verification)

    def planner(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        return _plan(services, task, videos, document, state, signed=signed)

    summary = await services.change_task(notification.task_id, planner)
    if job.payload.get("replay"):
        # Keep what the first processing changed: the history of a notification is its story.
        first = notification.outcome or "not processed"
        summary = f"{first}; replayed {isoformat(services.clock())}: {summary}"
    return await _record(services, job, notification_id, summary)


async def _record(services: Services, job: JobRecord, notification_id: str, outcome: str) -> Ended:
    """The outcome, with the job's end in the same transaction (one commit, not two)."""
    end = JobEnd.of(job, now=services.clock(), retry_at=None, error=None)
    await services.storage.set_notification_outcome(notification_id, outcome, end)
    return Ended.RECORDED


def _plan(
    services: Services,
    task: TaskRecord,
    videos: list[VideoRecord],
    document: Mapping[str, Any],
    state: ProviderTaskState,
    *,
    signed: bool,
) -> Plan:
    if is_console_probe(task, document, state):
        return Plan(None, PROBE_OUTCOME)
    why = mismatch(task, document)  # the task may have learnt its provider id since
    if why is not None:
        return Plan(None, f"ignored: {why}")
    return plan_provider_state(
        task,
        videos,
        as_this_task(task, state, document),
        now=services.clock(),
        emitter=services.emitter,
        needs_confirmation=not signed,
    )
