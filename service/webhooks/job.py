"""``delivery`` jobs: the attempts of one outgoing webhook delivery (one event, one endpoint).

The job is created with its delivery, in the transaction of the event (``Storage.apply``), so
no event is ever left unsent, even by a crash. Each run makes at most one attempt
(:func:`service.webhooks.sender.make_attempt`), recorded in one transaction with the job's end:
done, due again when the next attempt is, or failed. The delivery keeps its own schedule
(``OMNIHOOK_WEBHOOK_RETRY_SCHEDULE`` from its first attempt, or from a retry by hand), so the
job's retry schedule here only passes the delay of a hand-back through. A worker that dies
mid-attempt loses its lease: the job runs again and the delivery is attempted again, with the
same ``webhook-id``.
"""

from __future__ import annotations

import logging

from service.errors import StorageError
from service.jobs.outcome import Ended, RetryLater
from service.retry import RetrySchedule
from service.services import Services
from service.webhooks.sender import make_attempt
from storage.records import JobRecord

log = logging.getLogger(__name__)

# when the database fails mid-run: back off like this (seconds, by the job's run count)
_STORAGE_BACKOFF = (1.0, 5.0, 30.0, 120.0, 600.0)


async def run_delivery(services: Services, job: JobRecord) -> Ended | None:
    try:
        return await make_attempt(services, job)
    except StorageError as exc:
        delay = _STORAGE_BACKOFF[min(job.attempts, len(_STORAGE_BACKOFF)) - 1]
        raise RetryLater(f"storage: {exc}", delay=delay) from exc


def delivery_schedule(services: Services, job: JobRecord) -> RetrySchedule:
    """Never gives up and adds nothing: every RetryLater of a delivery carries its delay."""
    return RetrySchedule((0.0,) * max(job.attempts, 1), jitter=0.0)
