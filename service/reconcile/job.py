"""``sync`` jobs: ask the provider where a task stands.

``sync`` has three callers: a notification that carried no result, an unsigned final notification to
confirm (payload ``confirm``), and reconciliation of a quiet task (see
:mod:`service.reconcile.overdue`). Whatever the caller, only the provider's answer to our own query
is applied, as ``confirmed`` news.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from service.apply.lifecycle import FINAL, Plan, plan_provider_state, plan_timed_out
from service.errors import NotificationInvalid, ProviderRetryable, ProviderUnreachable
from service.jobs.outcome import RetryLater
from service.kling.answers import RATE_LIMITED
from service.kling.state import ProviderStatus, ProviderTaskState
from service.receiver.match import read_document, task_ids
from service.reconcile.overdue import MIN_RATE_LIMIT_BACKOFF, is_overdue
from service.services import Services
from storage.records import JobRecord, TaskChange, TaskRecord, VideoRecord

log = logging.getLogger(__name__)

# A provider may call back a moment before its query endpoint shows the final state: a
# confirmation that finds the task unfinished looks again a few times (on the job's schedule:
# about 36 s in all), then leaves the task to reconciliation.
CONFIRM_ATTEMPTS = 4
# Ids claimed by callbacks asked about per sync: a task has one, a forged flood gets no more.
MAX_CLAIMED_IDS = 3


async def run_sync(services: Services, job: JobRecord) -> None:
    task_id = str(job.payload["task_id"])
    task = await services.storage.get_task(task_id)
    if task is None or task.status in FINAL:
        return
    state = await _query(services, task)
    if state is None:
        log.warning(
            "the provider does not know task %s",
            task.id,
            extra={"action": "sync.unknown_task", "task_id": task.id},
        )
        # Counts as news: the task's next quiet spell starts now, and the deadline ends it.
        await services.change_task(task_id, lambda t, v: _touched(t, services.clock()))
    else:
        # "now" is read inside the planner: a retried plan must not carry an older time.
        await services.change_task(
            task_id,
            lambda t, v: plan_provider_state(
                t, v, state, now=services.clock(), emitter=services.emitter, confirmed=True
            ),
        )
    if await _time_out_if_overdue(services, task_id):
        return
    unconfirmed = state is None or _unfinished(state)
    if "confirm" in job.payload and unconfirmed and job.attempts < CONFIRM_ATTEMPTS:
        raise RetryLater(f"the provider does not show task {task_id} finished yet")


async def sync_given_up(services: Services, job: JobRecord, error: str) -> None:
    """The provider stayed unreachable or busy for the whole schedule: a task past its deadline
    times out; another one starts a new quiet spell, so reconciliation asks again later."""
    task_id = str(job.payload["task_id"])
    if await _time_out_if_overdue(services, task_id):
        return
    now = services.clock()
    await services.change_task(task_id, lambda t, v: _touched(t, now))


async def _query(services: Services, task: TaskRecord) -> ProviderTaskState | None:
    backoff = services.provider_backoff
    waiting = backoff.remaining(services.clock())
    if waiting:
        raise RetryLater("the provider is rate-limiting us", delay=waiting)
    try:
        if task.provider_task_id:
            return await services.kling.query_task(task.provider_task_id)
        return await _find_unanswered(services, task)
    except ProviderRetryable as exc:
        delay = exc.retry_after
        if exc.code in RATE_LIMITED:
            delay = max(delay or 0.0, MIN_RATE_LIMIT_BACKOFF)
            backoff.hold(services.clock() + timedelta(seconds=delay))
        raise RetryLater(str(exc), delay=delay) from exc
    except ProviderUnreachable as exc:
        raise RetryLater(str(exc)) from exc


async def _find_unanswered(services: Services, task: TaskRecord) -> ProviderTaskState | None:
    """A task no create answer named yet (its answer was lost, a confirmation came first): by
    our own id, then by the ids its callbacks claim, asked of the provider itself (an API that
    cannot look our id up, like apimodels, still answers for its own ids)."""
    cannot_tell: ProviderUnreachable | None = None
    try:
        found = await services.kling.find_task(task.external_task_id)
    except ProviderUnreachable as exc:
        found, cannot_tell = None, exc
    if found is None:
        found = await _claimed_by_callbacks(services, task)
    if found is None and cannot_tell is not None:
        raise cannot_tell
    return found


async def _claimed_by_callbacks(services: Services, task: TaskRecord) -> ProviderTaskState | None:
    """The provider's own answer for a task id a callback to this task's URL named, when it
    is about this task (it names our external id, or the API never names one); the claim alone
    is never applied."""
    claimed: list[str] = []
    for notification in reversed(await services.storage.list_notifications(task.id)):
        try:
            document = read_document(notification.body)
        except NotificationInvalid:
            continue
        for ref in sorted(task_ids(document)):
            if ref not in claimed:
                claimed.append(ref)
    # Where answers name our external id, one that does not is someone else's task.
    anonymous_ok = not services.kling.names_external_ids
    for ref in claimed[:MAX_CLAIMED_IDS]:
        state = await services.kling.query_task(ref)
        if state is None:
            continue
        if state.external_task_id == task.external_task_id or (
            anonymous_ok and state.external_task_id is None
        ):
            log.info(
                "task %s found by the id %s its callbacks named",
                task.id,
                state.task_id,
                extra={"action": "sync.found_by_callback", "task_id": task.id},
            )
            return state
    return None


def _unfinished(state: ProviderTaskState) -> bool:
    return state.status not in (ProviderStatus.SUCCEEDED, ProviderStatus.FAILED)


def _touched(task: TaskRecord, now: datetime) -> Plan:
    """Only ``last_news_at`` moves: a new quiet spell, so reconciliation asks again later."""
    return Plan(TaskChange(task=replace(task, last_news_at=now)), "no answer: asking again later")


async def _time_out_if_overdue(services: Services, task_id: str) -> bool:
    """Fail the task when it is unfinished past its deadline; True when it is final now."""
    deadline = timedelta(seconds=services.settings.task_deadline)
    timed_out = False

    def planner(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        nonlocal timed_out  # the last call is the one whose plan was written
        now = services.clock()
        timed_out = task.status not in FINAL and is_overdue(services, task, now)
        if not timed_out:
            return Plan(None, f"{task.status}, within its deadline")
        return plan_timed_out(task, videos, deadline=deadline, now=now, emitter=services.emitter)

    await services.change_task(task_id, planner)
    if timed_out:
        log.warning(
            "task %s timed out: no final state after %.0f s",
            task_id,
            deadline.total_seconds(),
            extra={"action": "task.timed_out", "task_id": task_id},
        )
        return True
    task = await services.storage.get_task(task_id)
    return task is None or task.status in FINAL
