"""Entering and leaving the admission queue.

Every submission is stored ``queued`` first and then offered a slot at once: with room for it
and for every task before it in the queue (those keep their places: they are admitted by their
own submissions or by the worker) it is admitted in the same request and sent inline, as before
the queue existed; without, the request answers 202 and the task waits, announced by
``task.queued``. An admission (:meth:`storage.base.Storage.admit_queued`) moves tasks from the
queue to ``pending`` in one serialised transaction, each with a fresh callback token and the
``submit`` job that sends its create, so a task is admitted once whatever the number of
replicas and workers, and the job's lease makes one worker send it. The worker admits more
whenever one of its tasks ends (its slot frees) and every second besides
(:func:`admit_forever`): tasks ended by another process, and the provider's hold, are seen so.

The submission's own admission is made in the transaction that stores the task
(:meth:`storage.base.Storage.submit_task`): no worker can take a task its submission is about
to send, and a task whose submission died right after storing it is queued, so a worker sends
it.

A create the provider answers "full" (1303/1302) puts its task back in the queue, at its old
place (the order is priority, then age), and holds admissions back (:mod:`.pace`): 1303 never
reaches the user as an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from service.apply.events import TASK_QUEUED
from service.apply.lifecycle import Plan
from service.callback_tokens import CALLBACK_TOKEN, hash_token, new_token
from service.jobs.kinds import SUBMIT, new_job
from service.services import Services
from service.submit.budget_guard import BudgetGuard
from storage.records import TaskChange, TaskRecord, TaskStatus, VideoRecord

log = logging.getLogger(__name__)

FIRST_CREATE = "first_create"  # a submit job's flag: its task was never sent before
ADMIT_BATCH = 50  # tasks one admission takes at most (each is one submit job)
POLL = 1.0  # seconds between the worker's admissions when nothing wakes it


class Admission:
    """One admission's plan for each task it takes, and the tokens it gave them."""

    def __init__(self, services: Services, *, inline_task_id: str | None) -> None:
        """``inline_task_id``: the task its own submission admits, and sends itself."""
        self._services = services
        self._inline = inline_task_id
        self._now = services.clock()
        self.tokens: dict[str, str] = {}  # task id -> the token of the plan that was written

    def plan(self, task: TaskRecord) -> TaskChange:
        token = new_token()
        self.tokens[task.id] = token  # a plan run again (a retried transaction) replaces it
        admitted = replace(
            task,
            status=TaskStatus.PENDING,
            callback_token_hash=hash_token(token),
            status_message="",
            updated_at=self._now,
            admitted_at=self._now,
        )
        inline = task.id == self._inline
        # Sent by the request itself: then the job only finishes a submission whose process
        # died before recording the create's outcome (due once any inline create is over).
        delay = self._services.settings.submit_resume_after if inline else 0.0
        job = new_job(
            SUBMIT,
            {"task_id": task.id, CALLBACK_TOKEN: token, FIRST_CREATE: not inline},
            now=self._now,
            task_id=task.id,
            dedupe_key=f"submit:{task.id}:v{task.version}",  # one per admission of the task
            run_at=self._now + timedelta(seconds=delay),
        )
        return TaskChange(task=admitted, jobs=[job])


async def store_and_admit(
    services: Services, task: TaskRecord, budget: BudgetGuard | None = None
) -> tuple[TaskRecord, str | None]:
    """Store a new queued task, admitted in the same transaction when it may go now (room for
    it and every task before it, admissions not held): the task as stored, and the callback
    token its submission sends the create with (None: it waits in the queue). ``budget``
    refuses it first, in that transaction, when it would take a budget past its limit."""
    admission = Admission(services, inline_task_id=task.id)
    held = services.admission.held_for() > 0
    limits = None if held else services.settings.provider_slots
    stored = await services.storage.submit_task(
        task,
        limits=limits,
        plan=admission.plan,
        spending=budget.spending if budget else (),
        guard=budget,
    )
    if stored.status == TaskStatus.QUEUED:
        return stored, None
    return stored, admission.tokens[task.id]


async def admit(services: Services) -> int:
    """The worker's admission: what the provider has room for, in queue order (one task at a
    time while the provider answered busy lately); answers how many were admitted."""
    pace = services.admission
    if pace.held_for() > 0:
        return 0
    admission = Admission(services, inline_task_id=None)
    admitted = await services.storage.admit_queued(
        limits=services.settings.provider_slots,
        limit=pace.batch(ADMIT_BATCH),
        plan=admission.plan,
    )
    if admitted:
        log.info(
            "admitted %d queued tasks",
            len(admitted),
            extra={"action": "admission.admitted", "count": len(admitted)},
        )
        services.jobs_ready.set()
    return len(admitted)


def plan_queued(
    services: Services, reason: str, *, back: bool = False
) -> Callable[[TaskRecord, list[VideoRecord]], Plan]:
    """A task left in the queue (``back``: put back, its first create refused for want of
    room), announced by ``task.queued``. A task admitted meanwhile (``back``: a create that was
    accepted after all) is left as it is."""
    expected = TaskStatus.PENDING if back else TaskStatus.QUEUED

    def planner(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        if task.status != expected or task.provider_task_id:
            return Plan(None, f"not queued: {task.status}")
        now = services.clock()
        queued = replace(
            task, status=TaskStatus.QUEUED, status_message=reason, updated_at=now, admitted_at=None
        )
        event, jobs = services.emitter.emit(TASK_QUEUED, task=queued, videos=videos, now=now)
        return Plan(TaskChange(task=queued, events=[event], jobs=jobs), f"queued: {reason}")

    return planner


async def admit_forever(services: Services, beat: Callable[[], None]) -> None:
    """The worker's admissions: whenever a slot frees here, and every :data:`POLL` seconds."""
    pace = services.admission
    while True:
        if pace.held_for() == 0 and (await services.storage.occupancy()).queued:
            await admit(services)
        beat()
        await pace.wait(POLL)  # a hold is looked at again each time: it may have been lifted
