"""The background worker: leases durable jobs and runs them, a bounded number at a time.

A job is leased for ``job_lease_seconds`` and the lease is renewed while the worker holds it
(one keeper renews them all); when a worker dies (even by SIGKILL) its leases expire and another
worker (or the same one, restarted) takes the jobs up again. Every result is recorded with the
lease's fencing token, so a worker whose lease was taken over cannot overwrite the new holder's
outcome.

While jobs are short (webhook deliveries take milliseconds), the worker leases a few more than
it has free slots and keeps them in a small local queue: a slot that frees starts the next job
at once instead of waiting for a lease, which is a write and waits for a commit, and each lease
takes several jobs. Long jobs would hold the queued ones back from other workers, so nothing is
queued then, and a queued job that still has not started after :data:`PREFETCH_HOLD` is handed
back to the database for any worker to take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Mapping
from datetime import timedelta

from service.bootstrap import open_services
from service.downloads import clean_partial_downloads
from service.errors import StorageError
from service.jobs.outcome import Ended, GiveUp, RetryLater
from service.jobs.runners import RUNNERS, JobRunner
from service.reconcile import enqueue_overdue_syncs
from service.services import Services
from service.settings import Settings
from storage.records import JobRecord

log = logging.getLogger(__name__)

SHORT_JOB = 0.5  # seconds: while jobs take less than this on average, a few are queued ahead
PREFETCH_HOLD = 2.0  # seconds a queued job may wait for a slot before it is handed back
_SMOOTHING = 0.2  # weight of the newest job in the moving average of durations
# While callbacks arrive, a worker that gives way rests this long between jobs: at most some
# twenty short jobs a second, a few percent of the process's one core, the rest left to the
# receiver (service.receiver.load); what is left waits, stored, for the burst to end (then all
# the slots are back). Long jobs (downloads) hardly notice it.
BUSY_REST = 0.05


class Worker:
    def __init__(
        self,
        services: Services,
        *,
        poll_interval: float = 0.5,
        runners: Mapping[str, JobRunner] = RUNNERS,
        gives_way: bool = False,
    ) -> None:
        """``gives_way``: the worker shares its process with the callback receiver (``serve``)
        and, while callbacks are arriving, runs one job at a time and rests :data:`BUSY_REST`
        between jobs (:mod:`service.receiver.load`)."""
        self._services = services
        self._runners = runners
        self._concurrency = services.settings.worker_concurrency
        self._lease_seconds = services.settings.job_lease_seconds
        self._poll_interval = poll_interval
        self._gives_way = gives_way
        self._running: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        # leased and waiting for a slot, with when (monotonic) they were leased
        self._queued: deque[tuple[JobRecord, float]] = deque()
        self._held: dict[str, JobRecord] = {}  # leased, not ended: the keeper renews them
        self._pace: float | None = None  # how long a job takes, smoothed; None: not known
        self._rest_until = 0.0  # monotonic: no job starts before, while the receiver is busy

    async def run(self) -> None:
        """Run until cancelled; on cancellation, running and queued jobs are handed back at
        once."""
        removed = clean_partial_downloads(self._services.settings.media_dir)
        if removed:
            log.info(
                "removed %d partial downloads left by a crash",
                removed,
                extra={"action": "worker.cleaned"},
            )
        log.info("worker started", extra={"action": "worker.started"})
        reconciler = asyncio.create_task(self._reconcile_forever())
        keeper = asyncio.create_task(self._keep_leases())
        try:
            while True:
                leased = await self._lease_some()
                if not leased:
                    await self._wait_for_work()
                    await self._hand_back_stale()
        finally:
            reconciler.cancel()
            keeper.cancel()
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(
                *self._running, self._hand_back_queued("worker stopped"), return_exceptions=True
            )
            log.info("worker stopped", extra={"action": "worker.stopped"})

    async def _reconcile_forever(self) -> None:
        interval = min(self._services.settings.reconcile_after / 4, 60.0)
        while True:
            try:
                await enqueue_overdue_syncs(self._services)
            except StorageError as exc:
                log.warning("reconciliation pass failed: %s", exc)
            await asyncio.sleep(interval)

    def _receiver_busy(self) -> bool:
        return self._gives_way and self._services.receiver_load.busy

    def _rest_left(self) -> float:
        """Seconds before the next job may start (0 unless the receiver is busy)."""
        if not self._receiver_busy():
            return 0.0
        return max(0.0, self._rest_until - time.monotonic())

    def _slots(self) -> int:
        """How many jobs may run at once now: all the slots, or one while the receiver of this
        process is busy (never none: the backlog keeps moving)."""
        return 1 if self._receiver_busy() else self._concurrency

    def _room(self) -> int:
        """How many more jobs to lease now: free slots, and the queue ahead of them."""
        return self._slots() + self._prefetch() - len(self._running) - len(self._queued)

    def _prefetch(self) -> int:
        """How many leased jobs to keep queued ahead of the free slots."""
        if self._pace is None or self._pace >= SHORT_JOB or self._receiver_busy():
            return 0
        return self._concurrency

    async def _lease_some(self) -> int:
        # One lease at a time (this loop), each for the room made while the last one was
        # committed: under a steady flow, leases follow each other and take several jobs each.
        self._start_queued()  # slots the receiver gave back since
        room = self._room()
        if room <= 0 or self._rest_left() > 0:
            return 0
        try:
            jobs = await self._services.storage.lease_jobs(
                now=self._services.clock(),
                lease_seconds=self._lease_seconds,
                limit=room,
                kinds=list(self._runners),
            )
        except StorageError as exc:
            log.warning("could not lease jobs: %s", exc, extra={"action": "worker.lease_failed"})
            return 0
        leased_at = time.monotonic()
        for job in jobs:
            self._held[job.id] = job
            self._queued.append((job, leased_at))
        self._start_queued()
        return len(jobs)

    def _start_queued(self) -> None:
        while self._queued and len(self._running) < self._slots() and not self._rest_left():
            job, _ = self._queued.popleft()
            task = asyncio.create_task(self._execute(job), name=f"job {job.id}")
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._receiver_busy():
            self._rest_until = time.monotonic() + BUSY_REST
        self._start_queued()  # at once: no lease to wait for
        self._slot_freed.set()  # room to lease more

    async def _wait_for_work(self) -> None:
        """Sleep until there may be work: jobs enqueued by this process (``jobs_ready``) or by
        any other one sharing the database (``wait_for_jobs``: LISTEN/NOTIFY on PostgreSQL, a
        short poll on SQLite), a free slot, or the poll interval (leases that expire, retries
        that fall due)."""
        rest = self._rest_left()
        if rest > 0:  # between two jobs while callbacks arrive: nothing starts before
            await asyncio.sleep(rest)
            return
        ready = self._services.jobs_ready
        ready.clear()
        self._slot_freed.clear()
        waiters: list[asyncio.Task[object]] = [asyncio.create_task(self._slot_freed.wait())]
        if self._room() > 0:  # new jobs matter only when one could start (else: every callback
            # of a burst would wake this loop for nothing)
            waiters.append(asyncio.create_task(ready.wait()))
            waiters.append(
                asyncio.create_task(self._services.storage.wait_for_jobs(self._poll_interval))
            )
        timeout = self._poll_interval
        if self._receiver_busy():  # back to all the slots as soon as the receiver is quiet
            timeout = min(timeout, self._services.receiver_load.quiet_in() + 0.01)
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            # collected, so that a wait that failed leaves no unretrieved exception behind
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _execute(self, job: JobRecord) -> None:
        started = time.monotonic()
        try:
            await self._run_and_record(job)
        except StorageError as exc:
            # The outcome could not be recorded; the lease expires and the job runs again
            # (every job is idempotent), so nothing is lost.
            log.warning(
                "could not record the outcome of job %s: %s",
                job.id,
                exc,
                extra={"action": "job.unrecorded", "job_id": job.id},
            )
        finally:
            self._held.pop(job.id, None)
            took = time.monotonic() - started
            pace = self._pace
            self._pace = took if pace is None else pace + _SMOOTHING * (took - pace)

    async def _run_and_record(self, job: JobRecord) -> None:
        runner = self._runners[job.kind]
        try:
            ended = await runner.run(self._services, job)
        except asyncio.CancelledError:
            # Shutting down: hand the job back so another worker can take it at once.
            with contextlib.suppress(Exception):
                now = self._services.clock()
                await asyncio.shield(
                    self._services.storage.retry_job(
                        job.id, job.lease_token, now=now, run_at=now, error="worker stopped"
                    )
                )
            raise
        except GiveUp as exc:
            await self._give_up(job, runner, str(exc))
        except RetryLater as exc:
            await self._retry(job, runner, str(exc), exc.delay)
        except Exception as exc:  # an unforeseen failure must not lose the job
            log.exception(
                "job %s (%s) failed",
                job.id,
                job.kind,
                extra={"action": "job.error", "job_id": job.id},
            )
            await self._retry(job, runner, f"{type(exc).__name__}: {exc}", None)
        else:
            if ended is not Ended.RECORDED:
                await self._services.storage.complete_job(
                    job.id, job.lease_token, now=self._services.clock()
                )

    async def _retry(
        self, job: JobRecord, runner: JobRunner, error: str, delay: float | None
    ) -> None:
        schedule = runner.schedule(self._services, job)
        planned = schedule.delay_after(job.attempts)
        if planned is None:
            await self._give_up(job, runner, error)
            return
        wait = max(planned, delay or 0.0)
        now = self._services.clock()
        log.info(
            "job %s (%s) will retry in %.1fs: %s",
            job.id,
            job.kind,
            wait,
            error,
            extra={"action": "job.retry", "job_id": job.id},
        )
        await self._services.storage.retry_job(
            job.id, job.lease_token, now=now, run_at=now + timedelta(seconds=wait), error=error
        )

    async def _give_up(self, job: JobRecord, runner: JobRunner, error: str) -> None:
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
            await runner.on_give_up(self._services, job, error)
        await self._services.storage.fail_job(
            job.id, job.lease_token, now=self._services.clock(), error=error
        )

    async def _keep_leases(self) -> None:
        """Renew every lease this worker holds (running or queued), every third of a lease."""
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            await asyncio.gather(*(self._renew(job) for job in list(self._held.values())))

    async def _renew(self, job: JobRecord) -> None:
        try:
            kept = await self._services.storage.renew_lease(
                job.id,
                job.lease_token,
                now=self._services.clock(),
                lease_seconds=self._lease_seconds,
            )
        except StorageError as exc:
            log.warning("could not renew the lease of %s: %s", job.id, exc)
            return
        if not kept and self._held.get(job.id) is job:  # not merely ended meanwhile
            del self._held[job.id]
            log.warning(
                "lost the lease of job %s",
                job.id,
                extra={"action": "job.lease_lost", "job_id": job.id},
            )

    async def _hand_back_stale(self) -> None:
        """Queued jobs that waited too long for a slot (the slots are taken by long jobs):
        back to the database, due now, for any worker; none are queued until jobs are seen
        to be short again."""
        if self._queued and time.monotonic() - self._queued[0][1] > PREFETCH_HOLD:
            self._pace = None
            await self._hand_back_queued("handed back: no free slot in its worker")

    async def _hand_back_queued(self, reason: str) -> None:
        queued = [job for job, _ in self._queued]
        self._queued.clear()
        now = self._services.clock()
        for job in queued:
            self._held.pop(job.id, None)
        handed = await asyncio.gather(
            *(
                self._services.storage.retry_job(
                    job.id, job.lease_token, now=now, run_at=now, error=reason
                )
                for job in queued
            ),
            return_exceptions=True,
        )
        for job, outcome in zip(queued, handed, strict=True):
            if isinstance(outcome, BaseException):  # its lease expires: taken up all the same
                log.warning("could not hand job %s back: %s", job.id, outcome)


async def run_worker(settings: Settings) -> None:
    """The standalone worker (``omnihook worker``): runs until cancelled or SIGTERM/SIGINT."""
    async with open_services(settings) as services:
        worker = asyncio.create_task(Worker(services).run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, worker.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await worker
