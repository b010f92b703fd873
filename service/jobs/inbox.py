"""``inbox`` jobs: apply one stored provider notification to its task."""

from __future__ import annotations

from service.errors import NotificationInvalid
from service.kling.notification import parse_notification
from service.lifecycle import plan_provider_state
from service.services import Services
from storage.records import JobRecord


async def run_inbox(services: Services, job: JobRecord) -> None:
    notification_id = str(job.payload["notification_id"])
    notification = await services.storage.get_notification(notification_id)
    if notification is None:
        return
    try:
        state = parse_notification(notification.body)
    except NotificationInvalid as exc:  # the receiver checked it; a changed parser could not
        await services.storage.set_notification_outcome(notification_id, f"unreadable: {exc}")
        return
    summary = await services.change_task(
        notification.task_id,
        lambda task, videos: plan_provider_state(
            task, videos, state, now=services.clock(), emitter=services.emitter
        ),
    )
    await services.storage.set_notification_outcome(notification_id, summary)
