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

Slots are budgeted per kind of job (:mod:`service.worker.slot_budget`): deliveries and handler runs
can never take the slots kept for applying callbacks and for downloads, and a job whose kind is
at its cap is not leased (other kinds are). A job that only waits for a slow peer may step
aside (:mod:`service.jobs.slot`) and free its slot while it goes on.

Its loops (leasing, renewing the leases, reconciling, admitting queued tasks) are supervised
(:mod:`service.supervise`): a failure is logged and the loop starts again after a backoff,
without losing the jobs held. Whether the worker can run is in ``Services.worker_health``
(``/readyz``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Mapping

from service.bootstrap import open_services
from service.downloads import clean_partial_downloads
from service.errors import StorageError
from service.jobs.slot import offer_step_aside
from service.reconcile.overdue import enqueue_overdue_syncs
from service.services import Services
from service.settings import Settings
from service.submit.admission.dispatch import POLL as ADMIT_POLL
from service.submit.admission.dispatch import admit_forever
from service.supervise import supervise
from service.worker.outcome import run_and_record
from service.worker.runners import RUNNERS, JobRunner
from service.worker.slot_budget import (
    SlotBudget,
    budget_for,
    giving_way_budget,
    group_of,
    groups_of,
)
from service.worker_health import LoopHealth, WorkerHealth
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
# A loop that has not completed a round for this long (besides its own period) is stuck: the
# worker cannot run (a lease or a renewal that waits this long on the database is not normal).
STALL = 20.0


class Worker:
    def __init__(
        self,
        services: Services,
        *,
        poll_interval: float = 0.5,
        runners: Mapping[str, JobRunner] = RUNNERS,
        gives_way: bool = False,
        health: WorkerHealth | None = None,
    ) -> None:
        """``gives_way``: the worker shares its process with the callback receiver (``serve``)
        and, while callbacks are arriving, runs one job at a time (and one of the task state
        machine beside it) and rests :data:`BUSY_REST` between jobs
        (:mod:`service.receiver.load`). ``health`` replaces the one made here (tests), which is
        registered as the process's ``services.worker_health``."""
        settings = services.settings
        self._services = services
        self._runners = runners
        self._groups = groups_of(runners)  # group -> its kinds, in leasing order
        self._budget = budget_for(settings, runners)
        self._busy_budget = giving_way_budget(runners)
        self._aside_limit = settings.webhook_slow_attempts
        self._lease_seconds = settings.job_lease_seconds
        self._poll_interval = poll_interval
        self._gives_way = gives_way
        self._running: dict[asyncio.Task[None], str] = {}  # job task -> its group
        self._aside: set[asyncio.Task[None]] = set()  # running, stepped aside: no slot held
        self._slot_freed = asyncio.Event()
        # leased and waiting for a slot, with when (monotonic) they were leased
        self._queued: deque[tuple[JobRecord, float]] = deque()
        self._held: dict[str, JobRecord] = {}  # leased, not ended: the keeper renews them
        # groups whose last lease found fewer due jobs than asked, with when (monotonic): not
        # asked again until new jobs are announced or the poll interval passes
        self._dry: dict[str, float] = {}
        self._pace: float | None = None  # how long a job takes, smoothed; None: not known
        self._rest_until = 0.0  # monotonic: no job starts before, while the receiver is busy
        self._health = health or WorkerHealth()
        services.worker_health = self._health
        self._beats: dict[str, LoopHealth] = {}

    @property
    def health(self) -> WorkerHealth:
        return self._health

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
        renew_every = self._lease_seconds / 3
        periods = {
            "lease": 4 * self._poll_interval,
            "renew": renew_every,
            "reconcile": self._reconcile_interval(),
            "admit": ADMIT_POLL,
        }
        for name, period in periods.items():
            self._beats[name] = self._health.loop(name, stale_after=period + STALL)
        self._health.running = True
        reconciler = asyncio.create_task(self._supervised("reconcile", self._reconcile_forever))
        admitter = asyncio.create_task(
            self._supervised(
                "admit", lambda: admit_forever(self._services, self._beats["admit"].beat)
            )
        )
        keeper = asyncio.create_task(self._supervised("renew", self._keep_leases))
        try:
            await self._supervised("lease", self._lease_forever)
        finally:
            self._health.running = False
            reconciler.cancel()
            admitter.cancel()
            keeper.cancel()
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(
                reconciler,
                admitter,
                keeper,
                *self._running,
                self._hand_back_queued("worker stopped"),
                return_exceptions=True,
            )
            log.info("worker stopped", extra={"action": "worker.stopped"})

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        await supervise(name, loop, health=self._beats[name])

    async def _lease_forever(self) -> None:
        while True:
            leased = await self._lease_some()
            if not leased:
                await self._wait_for_work()
                await self._hand_back_stale()
            self._beats["lease"].beat()

    def _reconcile_interval(self) -> float:
        return min(self._services.settings.reconcile_after / 4, 60.0)

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await enqueue_overdue_syncs(self._services)
            except StorageError as exc:
                log.warning("reconciliation pass failed: %s", exc)
            self._beats["reconcile"].beat()
            await asyncio.sleep(self._reconcile_interval())

    def _receiver_busy(self) -> bool:
        return self._gives_way and self._services.receiver_load.busy

    def _rest_left(self) -> float:
        """Seconds before the next job may start (0 unless the receiver is busy)."""
        if not self._receiver_busy():
            return 0.0
        return max(0.0, self._rest_until - time.monotonic())

    def _start_budget(self) -> SlotBudget:
        """The slots jobs may run in now: all of them, or one (and one of the task state
        machine) while the receiver of this process is busy (never none: the backlog keeps
        moving)."""
        return self._busy_budget if self._receiver_busy() else self._budget

    def _lease_budget(self) -> SlotBudget:
        """The slots, and the queue ahead of them: as many again while jobs are short."""
        if self._receiver_busy():
            return self._busy_budget
        if self._pace is None or self._pace >= SHORT_JOB:
            return self._budget
        return self._budget.scaled(2)

    def _running_counts(self) -> Counter[str]:
        """Jobs holding a slot, by group (those that stepped aside hold none)."""
        return Counter(group for task, group in self._running.items() if task not in self._aside)

    def _held_counts(self) -> Counter[str]:
        """Jobs holding a slot or queued for one, by group."""
        counts = self._running_counts()
        counts.update(group_of(job.kind) for job, _ in self._queued)
        return counts

    def _has_room(self) -> bool:
        budget, held = self._lease_budget(), self._held_counts()
        return any(budget.room(group, held) > 0 for group in self._groups)

    async def _lease_some(self) -> int:
        # One lease at a time (this loop), each for the room made while the last one was
        # committed: under a steady flow, leases follow each other and take several jobs each.
        self._start_queued()  # slots the receiver gave back since
        if self._rest_left() > 0 or not self._has_room():
            return 0
        ready = self._services.jobs_ready
        if ready.is_set():  # jobs enqueued since the last lease: any group may have some
            ready.clear()
            self._dry.clear()
        budget, held = self._lease_budget(), self._held_counts()
        asked = [g for g in self._groups if not self._is_dry(g) and budget.room(g, held) > 0]
        if not asked:
            return 0
        # One lease for all of them, within the least room among them: whatever mix of kinds
        # comes back fits every group's share. It usually finds fewer jobs than asked (every
        # group asked is then known to have none due); when it comes back full, each group is
        # leased within its own room, and those without more jobs are known too.
        limit = min(budget.room(group, held) for group in asked)
        leased = await self._lease(asked, limit)
        if leased is None or leased < limit or len(asked) == 1:
            return leased or 0
        for group in asked:
            room = budget.room(group, self._held_counts())
            if room > 0 and not self._is_dry(group):
                more = await self._lease([group], room)
                if more is None:
                    break
                leased += more
        return leased

    def _is_dry(self, group: str) -> bool:
        marked = self._dry.get(group)
        return marked is not None and time.monotonic() - marked < self._poll_interval

    async def _lease(self, groups: Collection[str], limit: int) -> int | None:
        """Lease up to ``limit`` jobs of the kinds of ``groups``; None when storage failed."""
        try:
            jobs = await self._services.storage.lease_jobs(
                now=self._services.clock(),
                lease_seconds=self._lease_seconds,
                limit=limit,
                kinds=[kind for group in groups for kind in self._groups[group]],
            )
        except StorageError as exc:
            # said once per outage (retried at every poll meanwhile): /readyz tells how long
            first = self._health.lease_failing_since is None
            self._health.lease_failed(str(exc))
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "could not lease jobs: %s",
                exc,
                extra={"action": "worker.lease_failed"},
            )
            return None
        if self._health.lease_failing_since is not None:
            log.info("leasing jobs again", extra={"action": "worker.lease_recovered"})
        self._health.lease_succeeded()
        if len(jobs) < limit:
            self._dry.update(dict.fromkeys(groups, time.monotonic()))
        leased_at = time.monotonic()
        for job in jobs:
            self._held[job.id] = job
            self._queued.append((job, leased_at))
        self._start_queued()
        return len(jobs)

    def _start_queued(self) -> None:
        """Start the queued jobs whose groups have a free slot, oldest first; the others wait
        for theirs."""
        if not self._queued or self._rest_left() > 0:
            return
        budget = self._start_budget()
        running = self._running_counts()
        waiting: deque[tuple[JobRecord, float]] = deque()
        for entry in self._queued:
            group = group_of(entry[0].kind)
            if budget.room(group, running) <= 0:
                waiting.append(entry)
                continue
            running[group] += 1
            task = asyncio.create_task(self._execute(entry[0]), name=f"job {entry[0].id}")
            self._running[task] = group
            task.add_done_callback(self._finished)
        self._queued = waiting

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._aside.discard(task)
        if self._receiver_busy():
            self._rest_until = time.monotonic() + BUSY_REST
        self._start_queued()  # at once: no lease to wait for
        self._slot_freed.set()  # room to lease more

    def _step_aside(self, task: asyncio.Task[None]) -> bool:
        """The job of ``task`` gives its slot back (:mod:`service.jobs.slot`)."""
        if task not in self._running:
            return False
        if task in self._aside:
            return True
        if len(self._aside) >= self._aside_limit:
            return False
        self._aside.add(task)
        self._start_queued()
        self._slot_freed.set()
        return True

    async def _wait_for_work(self) -> None:
        """Sleep until there may be work: jobs enqueued by this process (``jobs_ready``) or by
        any other one sharing the database (``wait_for_jobs``: LISTEN/NOTIFY on PostgreSQL, a
        short poll on SQLite), a free slot, or the poll interval (leases that expire, retries
        that fall due)."""
        rest = self._rest_left()
        if rest > 0:  # between two jobs while callbacks arrive: nothing starts before
            await asyncio.sleep(rest)
            return
        self._slot_freed.clear()
        freed = asyncio.create_task(self._slot_freed.wait())
        waiters: list[asyncio.Task[object]] = [freed]
        storage_wait = None
        if self._has_room():  # new jobs matter only when one could start (else: every
            # callback of a burst would wake this loop for nothing); jobs_ready is cleared by
            # the lease that follows it, so a job announced during the last lease is not missed
            waiters.append(asyncio.create_task(self._services.jobs_ready.wait()))
            storage_wait = asyncio.create_task(
                self._services.storage.wait_for_jobs(self._poll_interval)
            )
            waiters.append(storage_wait)
        timeout = self._poll_interval
        if self._receiver_busy():  # back to all the slots as soon as the receiver is quiet
            timeout = min(timeout, self._services.receiver_load.quiet_in() + 0.01)
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done or storage_wait in done:  # due by now, or enqueued by another process
                self._dry.clear()
        finally:
            for waiter in waiters:
                waiter.cancel()
            # collected, so that a wait that failed leaves no unretrieved exception behind
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _execute(self, job: JobRecord) -> None:
        task = asyncio.current_task()
        assert task is not None
        offer_step_aside(functools.partial(self._step_aside, task))  # this task's context only
        started = time.monotonic()
        try:
            await run_and_record(self._services, self._runners[job.kind], job)
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

    async def _keep_leases(self) -> None:
        """Renew every lease this worker holds (running or queued), every third of a lease."""
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            await asyncio.gather(*(self._renew(job) for job in list(self._held.values())))
            self._beats["renew"].beat()

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
