"""``handler`` jobs: run one handler plugin on one event, isolated from everything else."""

from __future__ import annotations

from handlers.api import Event
from handlers.errors import HandlerGaveUp
from handlers.runner import run_handler
from service.jobs.outcome import GiveUp, RetryLater
from service.retry import RetrySchedule
from service.services import Services
from storage.records import JobRecord


async def run_handler_job(services: Services, job: JobRecord) -> None:
    event_record = await services.storage.get_event(str(job.payload["event_id"]))
    if event_record is None:
        raise GiveUp(f"event {job.payload['event_id']} no longer exists")
    name = str(job.payload["handler"])
    try:
        handler = services.registry.get(name)
    except KeyError:
        # Loaded where the event was emitted but not here: a configuration difference between
        # processes. Keep the run until a worker that has the handler takes it.
        raise RetryLater(f"handler {name} is not loaded in this worker") from None
    event = Event(
        id=event_record.id,
        type=event_record.type,
        timestamp=event_record.timestamp,
        data=event_record.data,
        attempt=job.attempts,
    )
    try:
        await run_handler(handler, event, default_timeout=services.settings.handler_timeout)
    except HandlerGaveUp as exc:
        raise GiveUp(str(exc)) from exc
    # HandlerFailed / HandlerTimedOut propagate: the worker retries them on the schedule.


def handler_schedule(services: Services, job: JobRecord) -> RetrySchedule:
    """The handler's own retry delays when it declared some, else the configured ones."""
    try:
        handler = services.registry.get(str(job.payload["handler"]))
    except KeyError:
        return services.settings.handler_retry
    if handler.retries is not None:
        return RetrySchedule.of(handler.retries)
    return services.settings.handler_retry
