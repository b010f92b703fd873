"""What the worker does for each kind of job, and on which retry schedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from handlers.job import handler_schedule, run_handler_job
from service.apply.job import run_inbox
from service.downloads.job import download_given_up, run_download
from service.jobs import kinds
from service.jobs.outcome import Ended
from service.reconcile.job import run_sync, sync_given_up
from service.retry import RetrySchedule
from service.services import Services
from service.submit.job import run_submit, submit_given_up
from service.webhooks.job import delivery_schedule, run_delivery
from storage.records import JobRecord

# Inbox, sync and submit jobs fail only when the database or the provider does: retry for
# about a day before giving up.
PROVIDER_SCHEDULE = RetrySchedule.of([1, 5, 30, 120, 600, 1800, 3600, 7200, 21600, 43200])


@dataclass(frozen=True)
class JobRunner:
    run: Callable[[Services, JobRecord], Awaitable[Ended | None]]
    schedule: Callable[[Services, JobRecord], RetrySchedule]
    on_give_up: Callable[[Services, JobRecord, str], Awaitable[None]] | None = None


def _fixed(schedule: RetrySchedule) -> Callable[[Services, JobRecord], RetrySchedule]:
    return lambda services, job: schedule


RUNNERS: dict[str, JobRunner] = {
    kinds.INBOX: JobRunner(run_inbox, _fixed(PROVIDER_SCHEDULE)),
    kinds.SYNC: JobRunner(run_sync, _fixed(PROVIDER_SCHEDULE), sync_given_up),
    kinds.SUBMIT: JobRunner(run_submit, _fixed(PROVIDER_SCHEDULE), submit_given_up),
    kinds.DOWNLOAD: JobRunner(
        run_download, lambda services, job: services.settings.download_retry, download_given_up
    ),
    kinds.HANDLER: JobRunner(run_handler_job, handler_schedule),
    kinds.DELIVERY: JobRunner(run_delivery, delivery_schedule),
}
