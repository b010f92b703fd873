"""``handler`` jobs: run one handler plugin on one event, isolated from everything else.

Each (event, handler) pair is one durable job (a "handler run"): its attempts, the delays between
them (the handler's ``@on(retries=...)`` or ``OMNIHOOK_HANDLER_RETRY_SCHEDULE``, with jitter) and
its per-attempt timeout are its own. A run that exhausts its attempts stays ``failed`` with its
last error; :func:`find_handler_runs` and :func:`retry_handler_run` are what the API and
``omnihook handlers runs|retry`` offer on top.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from handlers.api import Event
from handlers.errors import HandlerFailed, HandlerGaveUp, HandlerTimedOut
from handlers.payloads import EventData
from handlers.runner import run_handler
from service.errors import Conflict, NotFound
from service.jobs.kinds import HANDLER
from service.jobs.outcome import GiveUp, RetryLater
from service.retry import RetrySchedule
from service.services import Services
from storage.records import JobRecord, JobStatus

log = logging.getLogger(__name__)

#: How many tasks one page of a listing across tasks looks through, at most: a page always
#: answers quickly, however few of the runs match.
TASKS_PER_PAGE = 100


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


@dataclass(frozen=True)
class HandlerRunPage:
    """Runs of the newest tasks first (each task's runs oldest first), and where to go on."""

    runs: list[JobRecord]
    # The id of the last task looked through, when older tasks may hold more runs.
    next_cursor: str | None


async def find_handler_runs(
    services: Services,
    *,
    task: str | None = None,
    status: JobStatus | None = None,
    handler: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> HandlerRunPage:
    """The handler runs matching every filter given.

    With ``task`` (an id or external id) the page holds all its matching runs. Without, tasks
    are looked through newest first until ``limit`` runs are found (a task's runs are never
    split across pages, so a page may hold a few more) or ``TASKS_PER_PAGE`` tasks were seen;
    ``next_cursor`` then continues the listing. NotFound: no such task; ValueError: a cursor
    this service did not hand out.
    """

    def matches(job: JobRecord) -> bool:
        return (status is None or job.status == status) and (
            handler is None or job.payload.get("handler") == handler
        )

    storage = services.storage
    if task is not None:
        record = await storage.get_task(task)
        if record is None:
            raise NotFound(f"no task {task!r}")
        runs = await storage.list_jobs(task_id=record.id, kind=HANDLER)
        return HandlerRunPage([job for job in runs if matches(job)], None)
    before: tuple[datetime, str] | None = None
    if cursor is not None:
        last = await storage.get_task(cursor)
        if last is None or last.id != cursor:
            raise ValueError("cursor is not one this service handed out")
        before = (last.created_at, last.id)
    found: list[JobRecord] = []
    seen = 0
    while seen < TASKS_PER_PAGE:
        wanted = min(50, TASKS_PER_PAGE - seen)
        batch = await storage.list_tasks(limit=wanted, before=before)
        for record in batch:
            seen += 1
            runs = await storage.list_jobs(task_id=record.id, kind=HANDLER)
            found.extend(job for job in runs if matches(job))
            before = (record.created_at, record.id)
            if len(found) >= limit:
                return HandlerRunPage(found, record.id)
        if len(batch) < wanted:
            return HandlerRunPage(found, None)  # no older task left
    return HandlerRunPage(found, before[1] if before is not None else None)


async def get_handler_run(services: Services, run_id: str) -> JobRecord:
    """One handler run by id; NotFound when there is none (or the job is of another kind)."""
    job = await services.storage.get_job(run_id)
    if job is None or job.kind != HANDLER:
        raise NotFound(f"no handler run {run_id!r}")
    return job


async def retry_handler_run(services: Services, run_id: str) -> JobRecord:
    """Run a finished (failed or succeeded) handler run again now, from attempt 1.

    NotFound: no such run; Conflict: it is queued or running (it will run anyway).
    """
    await get_handler_run(services, run_id)
    if not await services.storage.requeue_job(run_id, now=services.clock()):
        current = await get_handler_run(services, run_id)
        raise Conflict(
            f"handler run {run_id} is {current.status.value}; only a finished run (failed or "
            "succeeded) can be run again"
        )
    services.jobs_ready.set()  # an in-process worker takes it at once
    job = await get_handler_run(services, run_id)
    log.info(
        "handler run %s (%s on %s) queued again by hand",
        run_id,
        job.payload.get("handler"),
        job.payload.get("event_type"),
        extra={"action": "handler_run.requeued", "job_id": run_id},
    )
    return job
