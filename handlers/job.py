"""``handler`` jobs: run one handler plugin on one event, isolated from everything else.

Each (event, handler) pair is one durable job (a "handler run"): its attempts, the delays between
them (the handler's ``@on(retries=...)`` or ``OMNIHOOK_HANDLER_RETRY_SCHEDULE``, with jitter) and
its per-attempt timeout are its own. A run that exhausts its attempts stays ``failed`` with its
last error; :mod:`handlers.runs` is what the API and ``omnihook handlers runs|retry`` offer on top.
"""

from __future__ import annotations

import logging
from typing import cast

from handlers.api import Event
from handlers.errors import HandlerFailed, HandlerGaveUp, HandlerTimedOut
from handlers.payloads import EventData
from handlers.runner import run_handler
from service.jobs.outcome import GiveUp, RetryLater
from service.retry import RetrySchedule
from service.services import Services
from storage.records import JobRecord

log = logging.getLogger(__name__)


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
        data=cast(EventData, event_record.data),
        attempt=job.attempts,
    )
    try:
        await run_handler(
            handler,
            event,
            default_timeout=services.settings.handler_timeout,
            host=services.handler_host,
        )
    except HandlerGaveUp as exc:
        log.warning("%s", exc, extra={"action": "handler_run.gave_up", "job_id": job.id})
        raise GiveUp(exc.reason) from exc
    except HandlerFailed as exc:
        # The plugin's failure, not omnihook's: its traceback (pointing into the plugin) is for
        # the plugin's author; the run records the short reason and is retried on its schedule.
        cause = None if isinstance(exc, HandlerTimedOut) else exc.__cause__
        log.warning(
            "%s", exc, exc_info=cause, extra={"action": "handler_run.failed", "job_id": job.id}
        )
        raise RetryLater(exc.reason) from exc


def handler_schedule(services: Services, job: JobRecord) -> RetrySchedule:
    """The handler's own retry delays when it declared some, else the configured ones."""
    try:
        handler = services.registry.get(str(job.payload["handler"]))
    except KeyError:
        return services.settings.handler_retry
    if handler.retries is not None:
        return RetrySchedule.of(handler.retries)
    return services.settings.handler_retry
