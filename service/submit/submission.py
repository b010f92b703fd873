"""Submitting a task: store it first, then ask the provider.

A task is stored ``queued`` and offered a provider slot at once (:mod:`service.submit.admission`):
with room it is sent in the same request (:func:`send_first`); without, it waits and a ``submit``
job sends it once a slot frees. It is stored (with its callback token's hash) before the provider is
called, so a notification that arrives before the create answer is still matched. A create whose
answer is lost is never sent again blindly: the client looks the task up by ``external_task_id``
first, and when even that is impossible the task stays ``pending`` and a ``submit`` job finishes it.

The callback token that went out with the first create is the task's until its outcome is
known: the ``submit`` job keeps it and sends any create again with the same callback URL, so the
first create's callbacks are matched whichever create landed. A create sent again and refused
because the external id is taken proves the task exists: it stays ``pending`` and is looked up
again (:class:`~service.kling.client.TaskExistsUnseen`), never failed or deleted.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from service.apply.lifecycle import plan_provider_state
from service.callback_tokens import CALLBACK_TOKEN, hash_token, new_token
from service.costs.estimate import CostEstimate
from service.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderUnreachable,
)
from service.ids import new_id
from service.jobs.kinds import SUBMIT, new_job
from service.kling.answers import ACCOUNT_REFUSED
from service.kling.client import TaskExistsUnseen, is_busy, refused_as_duplicate
from service.kling.request import SubmitRequest
from service.kling.state import ProviderStatus, ProviderTaskState
from service.services import Services
from service.submit.admission.dispatch import plan_queued, store_and_admit
from service.submit.budget_guard import announce_thresholds, budget_guard, estimate_of
from storage.records import TaskChange, TaskRecord, TaskStatus

__all__ = [
    "CALLBACK_TOKEN",
    "accept",
    "callback_url",
    "hash_token",
    "resume",
    "send_first",
    "submit",
]

log = logging.getLogger(__name__)

RESUME_DELAY = timedelta(seconds=10)
WAITING_FOR_A_SLOT = "waiting for a free provider slot"


def callback_url(services: Services, token: str) -> str:
    public_url = services.settings.public_url
    if not public_url:
        raise ConfigurationError(
            "OMNIHOOK_PUBLIC_URL is not set: the provider needs a public URL to call back; "
            "set it to this service's public base URL (e.g. https://hooks.example.com)"
        )
    return f"{public_url}/callbacks/kling/{token}"


async def submit(services: Services, request: SubmitRequest) -> TaskRecord:
    """Store one task and send it when the provider has room; answers the stored task
    (``queued`` while it waits, ``pending`` when the outcome is unknown and a job will finish
    it). Raises Conflict, ConfigurationError, BudgetExceeded and PriceUnknown (a budget
    refused it: nothing was kept), ProviderError (refused: nothing was kept)."""
    callback_url(services, "")  # before storing: a misconfiguration stores nothing
    now = services.clock()
    task_id = new_id("task")
    task = TaskRecord(
        id=task_id,
        external_task_id=request.external_task_id or task_id,
        # a token nobody holds: callbacks match only once an admission gave the task its own
        callback_token_hash=hash_token(new_token()),
        status=TaskStatus.QUEUED,
        model_name=request.model_name,
        request=request.provider_body(model_field=services.kling.model_field),
        metadata=request.metadata,
        created_at=now,
        updated_at=now,
        priority=request.priority,
    )
    estimate = estimate_of(services, task)
    task.estimate = estimate.as_dict() if isinstance(estimate, CostEstimate) else None
    budget = budget_guard(services, task, estimate)  # PriceUnknown: a budget cannot judge it
    task, token = await store_and_admit(services, task, budget)  # BudgetExceeded: not stored
    log.info("task stored", extra={"action": "task.stored", "task_id": task.id})
    if budget is not None:
        await announce_thresholds(services, task.id, budget.crossings)
    if token is None:
        await services.change_task(task.id, plan_queued(services, WAITING_FOR_A_SLOT))
        services.admission.nudge()  # tasks before it in the queue may have room
    else:
        await send_first(services, task.id, token, inline=True)
    stored = await services.storage.get_task(task.id)
    return stored or task


async def send_first(services: Services, task_id: str, token: str, *, inline: bool) -> str:
    """Send an admitted task's first create and record its outcome.

    Refused for want of room: back in the queue. Answer lost: pending, a job finishes it
    (``inline``; a job raises ProviderUnreachable to be retried). Refused for good: an inline
    submission is forgotten and the error raised (the caller answers 502; nothing was created,
    nothing paid); a queued one, whose caller was told 202 long ago, fails, except that an
    account problem (credentials, arrears) puts it back in the queue for the operator to fix."""
    task = await services.storage.get_task(task_id)
    if task is None or task.status != TaskStatus.PENDING or task.provider_task_id:
        return "nothing to send"
    url = callback_url(services, token)
    try:
        state = await services.kling.create_task(_create_body(task, url))
    except ProviderUnreachable as exc:
        if not inline:
            raise
        log.warning(
            "create answer lost for %s; a job will finish the submission: %s",
            task.id,
            exc,
            extra={"action": "task.submit_unknown", "task_id": task.id},
        )
        job = new_job(
            SUBMIT,
            # The token stays the task's: a create that landed calls back with it.
            {"task_id": task.id, CALLBACK_TOKEN: token},
            now=services.clock(),
            task_id=task.id,
            dedupe_key=f"submit:{task.id}",
            run_at=services.clock() + RESUME_DELAY,
        )
        await services.storage.enqueue([job])
        services.jobs_ready.set()
        return "outcome unknown"
    except ProviderError as exc:
        return await _refused(services, task, exc, inline=inline)
    services.admission.accepted()
    return await accept(services, task.id, state)


async def _refused(
    services: Services, task: TaskRecord, exc: ProviderError, *, inline: bool
) -> str:
    if is_busy(exc):
        hold = services.admission.busy(exc.retry_after)
        log.info(
            "provider full (%s): task %s queued again, admissions held %.1f s",
            exc,
            task.id,
            hold,
            extra={"action": "admission.provider_full", "task_id": task.id},
        )
        return await services.change_task(
            task.id, plan_queued(services, f"provider full, waiting for a slot: {exc}", back=True)
        )
    if inline:
        # Refused for sure: nothing was created at the provider, nothing was paid. Forget the
        # task so the same external_task_id can be submitted again once the cause is fixed.
        await services.storage.delete_task(task.id)
        raise exc
    if exc.code in ACCOUNT_REFUSED:
        services.admission.account_refused()
        log.error(
            "provider refused the account (%s): task %s queued again, admissions held",
            exc,
            task.id,
            extra={"action": "admission.account_refused", "task_id": task.id},
        )
        return await services.change_task(
            task.id, plan_queued(services, f"provider refused the account: {exc}", back=True)
        )
    refused = ProviderTaskState(
        task_id="", status=ProviderStatus.FAILED, status_message=f"provider refused: {exc}"
    )
    return await accept(services, task.id, refused)


async def accept(services: Services, task_id: str, state: ProviderTaskState) -> str:
    """Record the provider's answer to a create (or a lookup that found the task)."""
    return await services.change_task(
        task_id,
        lambda t, v: plan_provider_state(
            t, v, state, now=services.clock(), emitter=services.emitter
        ),
    )


async def resume(services: Services, task: TaskRecord, token: str | None = None) -> str:
    """Finish a submission whose create answer was lost (the ``submit`` job).

    Ask the provider first (every lookup its API has). A create is sent again only when the
    lookups say the task is not there, or cannot tell but the provider refuses a taken external
    id (so sending again creates the task or proves it exists). It goes with the first create's
    ``token`` when the job kept it; only a job without one (queued by an older version, whose
    create is surely unknown to the provider) gets a fresh token.

    Raises :class:`TaskExistsUnseen` (look again later) and :class:`ProviderUnreachable`."""
    if task.status != TaskStatus.PENDING or task.provider_task_id:
        return f"already {task.status}"
    try:
        found = await services.kling.find_task(task.external_task_id)
    except ProviderUnreachable:
        if token is None or not services.kling.refuses_duplicate_external_ids:
            raise  # the task may exist: wait for its callbacks or a later lookup
        found = None  # no lookup by our id: sending again creates it or proves it exists
    if found is not None:
        return await accept(services, task.id, found)
    if token is None:
        token = new_token()
        rotated = replace(task, callback_token_hash=hash_token(token))
        if not await services.storage.apply(TaskChange(task=rotated)):
            return "task changed meanwhile; looking again later"
    url = callback_url(services, token)
    try:
        state = await services.kling.create_task(_create_body(task, url))
    except (ProviderRejected, ProviderAuthError) as exc:
        if refused_as_duplicate(exc):
            raise TaskExistsUnseen(
                f"task {task.external_task_id} exists at the provider (a create sent again was "
                f"refused as a duplicate: {exc}); looking it up again later"
            ) from exc
        # The user was told "pending"; now the provider refused for good: the task failed.
        refused = ProviderTaskState(
            task_id="", status=ProviderStatus.FAILED, status_message=f"provider refused: {exc}"
        )
        return await accept(services, task.id, refused)
    return await accept(services, task.id, state)


def _create_body(task: TaskRecord, url: str) -> dict[str, object]:
    return {**task.request, "external_task_id": task.external_task_id, "callback_url": url}
