"""Handler runs as the API and ``omnihook handlers runs|retry`` see them: find, get, retry.

A run is a ``handler`` job (:mod:`handlers.job`); a failed one stays with its last error until
it is run again by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from service.errors import Conflict, NotFound
from service.jobs.kinds import HANDLER
from service.services import Services
from storage.records import JobRecord, JobStatus

log = logging.getLogger(__name__)

#: How many tasks one page of a listing across tasks looks through, at most: a page always
#: answers quickly, however few of the runs match.
TASKS_PER_PAGE = 100


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
