"""How a job ended, recorded with its lease's fencing token.

A runner returns (done), raises :class:`~service.jobs.outcome.RetryLater` (again after its
schedule's next delay, or the provider's, whichever is longer), raises
:class:`~service.jobs.outcome.GiveUp` (failed for good: its consequence first, then its state),
or fails unforeseen (retried like RetryLater, logged with its traceback). A worker whose lease
was taken over cannot record anything: the fencing token no longer matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from service.jobs.outcome import Ended, GiveUp, RetryLater
from service.services import Services
from service.worker.runners import JobRunner
from storage.records import JobRecord

log = logging.getLogger(__name__)


async def run_and_record(services: Services, runner: JobRunner, job: JobRecord) -> None:
    """Run ``job`` and record how it ended: done, to retry on its schedule, or failed for good."""
    try:
        ended = await runner.run(services, job)
    except asyncio.CancelledError:
        # Shutting down: hand the job back so another worker can take it at once.
        with contextlib.suppress(Exception):
            now = services.clock()
            await asyncio.shield(
                services.storage.retry_job(
                    job.id, job.lease_token, now=now, run_at=now, error="worker stopped"
                )
            )
        raise
    except GiveUp as exc:
        await _give_up(services, job, runner, str(exc))
    except RetryLater as exc:
        await _retry(services, job, runner, str(exc), exc.delay)
    except Exception as exc:  # an unforeseen failure must not lose the job
        log.exception(
            "job %s (%s) failed",
            job.id,
            job.kind,
            extra={"action": "job.error", "job_id": job.id},
        )
        await _retry(services, job, runner, f"{type(exc).__name__}: {exc}", None)
    else:
        if ended is not Ended.RECORDED:
            await services.storage.complete_job(job.id, job.lease_token, now=services.clock())


async def _retry(
    services: Services, job: JobRecord, runner: JobRunner, error: str, delay: float | None
) -> None:
    schedule = runner.schedule(services, job)
    planned = schedule.delay_after(job.attempts)
    if planned is None:
        await _give_up(services, job, runner, error)
        return
    wait = max(planned, delay or 0.0)
    now = services.clock()
    log.info(
        "job %s (%s) will retry in %.1fs: %s",
        job.id,
        job.kind,
        wait,
        error,
        extra={"action": "job.retry", "job_id": job.id},
    )
    await services.storage.retry_job(
        job.id, job.lease_token, now=now, run_at=now + timedelta(seconds=wait), error=error
    )


async def _give_up(services: Services, job: JobRecord, runner: JobRunner, error: str) -> None:
    log.warning(
        "job %s (%s) failed for good: %s",
        job.id,
        job.kind,
        error,
        extra={"action": "job.failed", "job_id": job.id},
    )
    # Consequences first (idempotent), then the job's state: a crash in between leaves a job
    # that gives up again, never a job marked failed whose consequence was not recorded.
    if runner.on_give_up is not None:
        await runner.on_give_up(services, job, error)
    await services.storage.fail_job(job.id, job.lease_token, now=services.clock(), error=error)
