"""Submitting a task: store it first, then ask the provider.

The task (with its callback token's hash) is stored before the provider is called, so a
notification that arrives before the create answer is still matched. A create whose answer is
lost is never sent again blindly: the client looks the task up by ``external_task_id`` first,
and when even that is impossible the task stays ``pending`` and a ``submit`` job finishes it.

The callback token that went out with the first create is the task's until its outcome is
known: the ``submit`` job keeps it and sends any create again with the same callback URL, so the
first create's callbacks are matched whichever create landed. A create sent again and refused
because the external id is taken proves the task exists: it stays ``pending`` and is looked up
again (:class:`~service.kling.client.TaskExistsUnseen`), never failed or deleted.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import replace
from datetime import timedelta

from service.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderUnreachable,
)
from service.ids import new_id
from service.jobs.kinds import SUBMIT, new_job
from service.kling.client import TaskExistsUnseen, refused_as_duplicate
from service.kling.request import SubmitRequest
from service.kling.state import ProviderStatus, ProviderTaskState
from service.lifecycle import plan_provider_state
from service.services import Services
from storage.records import TaskChange, TaskRecord, TaskStatus

log = logging.getLogger(__name__)

RESUME_DELAY = timedelta(seconds=10)
CALLBACK_TOKEN = "callback_token"  # the submit job's copy of the first create's token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def callback_url(services: Services, token: str) -> str:
    public_url = services.settings.public_url
    if not public_url:
        raise ConfigurationError(
            "OMNIHOOK_PUBLIC_URL is not set: the provider needs a public URL to call back; "
            "set it to this service's public base URL (e.g. https://hooks.example.com)"
        )
    return f"{public_url}/callbacks/kling/{token}"


async def submit(services: Services, request: SubmitRequest) -> TaskRecord:
    """Store and submit one task; answers the stored task (``pending`` when the outcome is
    unknown and a job will finish it). Raises Conflict, ConfigurationError, ProviderError."""
    token = secrets.token_urlsafe(32)
    url = callback_url(services, token)  # before storing: a misconfiguration stores nothing
    now = services.clock()
    task_id = new_id("task")
    task = TaskRecord(
        id=task_id,
        external_task_id=request.external_task_id or task_id,
        callback_token_hash=hash_token(token),
        status=TaskStatus.PENDING,
        model_name=request.model_name,
        request=request.provider_body(model_field=services.kling.model_field),
        metadata=request.metadata,
        created_at=now,
        updated_at=now,
    )
    # Written with the task: if this process dies before the create's outcome is recorded, the
    # job finishes the submission (with the same token); once it is recorded, the job finds
    # nothing left to do.
    crash_resume = new_job(
        SUBMIT,
        {"task_id": task.id, CALLBACK_TOKEN: token},
        now=now,
        task_id=task.id,
        dedupe_key=f"submit:{task.id}:crash",
        run_at=now + timedelta(seconds=services.settings.submit_resume_after),
    )
    await services.storage.create_task(task, [crash_resume])
    log.info("task stored", extra={"action": "task.stored", "task_id": task.id})
    try:
        state = await services.kling.create_task(_create_body(task, url))
    except ProviderUnreachable as exc:
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
            now=now,
            task_id=task.id,
            dedupe_key=f"submit:{task.id}",
            run_at=now + RESUME_DELAY,
        )
        await services.storage.enqueue([job])
        services.jobs_ready.set()
        return task
    except ProviderError:
        # Refused for sure: nothing was created at the provider, nothing was paid. Forget the
        # task so the same external_task_id can be submitted again once the cause is fixed.
        await services.storage.delete_task(task.id)
        raise
    await accept(services, task.id, state)
    stored = await services.storage.get_task(task.id)
    return stored or task


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
        token = secrets.token_urlsafe(32)
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
