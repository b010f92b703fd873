"""``submit`` jobs: send an admitted task's first create, or finish a submission whose create
answer was lost: with the first create's callback token, and pending until the task is found (a
create sent again and refused as a duplicate proves it exists: the job looks again, with
backoff).
"""

from __future__ import annotations

import logging

from service.errors import ProviderRetryable, ProviderUnreachable
from service.jobs.outcome import RetryLater
from service.kling.client import TaskExistsUnseen
from service.kling.state import ProviderStatus, ProviderTaskState
from service.services import Services
from service.submit.admission.dispatch import FIRST_CREATE
from service.submit.submission import CALLBACK_TOKEN, accept, hash_token, resume, send_first
from storage.records import JobRecord

log = logging.getLogger(__name__)


async def run_submit(services: Services, job: JobRecord) -> None:
    """Send an admitted task's first create (``first_create``, on the job's first lease), or
    finish a submission whose outcome is unknown. A job whose token is no longer the task's
    belongs to an earlier admission (the task went back to the queue since): it does nothing."""
    task = await services.storage.get_task(str(job.payload["task_id"]))
    if task is None:
        return
    token = job.payload.get(CALLBACK_TOKEN)
    if isinstance(token, str) and hash_token(token) != task.callback_token_hash:
        return
    try:
        if job.payload.get(FIRST_CREATE) and job.attempts == 1 and isinstance(token, str):
            # Never sent: no lookup first. A lease taken over (attempts > 1) may have sent it.
            await send_first(services, task.id, token, inline=False)
            return
        await resume(services, task, token if isinstance(token, str) else None)
    except TaskExistsUnseen as exc:
        # Proven to exist: pending it stays, its callbacks (same token) or a lookup will tell.
        log.info(
            "task %s exists at the provider, its id not known yet",
            task.id,
            extra={"action": "submit.exists_unseen", "task_id": task.id},
        )
        raise RetryLater(str(exc)) from exc
    except (ProviderUnreachable, ProviderRetryable) as exc:
        raise RetryLater(str(exc), delay=getattr(exc, "retry_after", None)) from exc


async def submit_given_up(services: Services, job: JobRecord, error: str) -> None:
    """The provider stayed unreachable for the whole schedule: fail the task rather than leave
    it pending forever; the message says the outcome at the provider is unknown."""
    message = f"submission outcome unknown, provider unreachable: {error}"
    failed = ProviderTaskState(task_id="", status=ProviderStatus.FAILED, status_message=message)
    await accept(services, str(job.payload["task_id"]), failed)
