"""``/v1/notifications``: one stored provider notification, and replaying it.

Every notification the receiver accepted is kept with its raw body, the headers that matter,
how it was verified and what processing it changed (``GET /v1/tasks/{id}/notifications`` lists
a task's). ``POST /v1/notifications/{id}/replay`` puts it through the pipeline again: a new
``inbox`` job checks it against the task as it is now and applies it. The state machine
ignores what it already knows, so a replay can only bring missed news (after a bug fix, say),
never announce anything twice; its result is appended to the notification's ``outcome``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.tasks import services_of
from service.clock import isoformat
from service.errors import NotFound
from service.jobs.kinds import INBOX, new_job
from storage.records import NotificationRecord


def notification_json(notification: NotificationRecord) -> dict[str, Any]:
    return {
        "id": notification.id,
        "task_id": notification.task_id,
        "received_at": isoformat(notification.received_at),
        "headers": notification.headers,
        "body": notification.body.decode("utf-8", errors="replace"),
        "verification": notification.verification,
        "outcome": notification.outcome,
    }


async def _find(request: Request) -> NotificationRecord:
    notification_id = request.path_params["notification_id"]
    notification = await services_of(request).storage.get_notification(notification_id)
    if notification is None:
        raise NotFound(f"no notification {notification_id!r}")
    return notification


async def get_notification(request: Request) -> Response:
    return JSONResponse(notification_json(await _find(request)))


async def replay_notification(request: Request) -> Response:
    """202: the replay is queued; its result shows in the notification's ``outcome``."""
    services = services_of(request)
    notification = await _find(request)
    now = services.clock()
    job = new_job(
        INBOX,
        {"notification_id": notification.id, "replay": True},
        now=now,
        task_id=notification.task_id,
    )
    await services.storage.enqueue([job])
    services.jobs_ready.set()
    return JSONResponse(
        {**notification_json(notification), "replay_job_id": job.id}, status_code=202
    )
