"""``sync`` and ``submit`` jobs: ask the provider where a task stands.

``sync`` confirms a state whose notification carried no result (and, later, reconciles tasks
whose callbacks were lost); ``submit`` finishes a submission whose create answer was lost.
"""

from __future__ import annotations

from service.errors import ProviderRetryable, ProviderUnreachable
from service.jobs.outcome import GiveUp, RetryLater
from service.kling.state import ProviderStatus, ProviderTaskState
from service.lifecycle import plan_provider_state
from service.services import Services
from service.submission import accept, resume
from storage.records import JobRecord


async def run_sync(services: Services, job: JobRecord) -> None:
    task_id = str(job.payload["task_id"])
    task = await services.storage.get_task(task_id)
    if task is None:
        return
    try:
        state = await services.kling.query_task(task.provider_task_id or task.external_task_id)
    except (ProviderUnreachable, ProviderRetryable) as exc:
        raise RetryLater(str(exc), delay=getattr(exc, "retry_after", None)) from exc
    if state is None:
        raise GiveUp(f"the provider does not know task {task.provider_task_id}")
    await services.change_task(
        task_id,
        lambda t, v: plan_provider_state(
            t, v, state, now=services.clock(), emitter=services.emitter, confirmed=True
        ),
    )


async def run_submit(services: Services, job: JobRecord) -> None:
    task = await services.storage.get_task(str(job.payload["task_id"]))
    if task is None:
        return
    try:
        await resume(services, task)
    except (ProviderUnreachable, ProviderRetryable) as exc:
        raise RetryLater(str(exc), delay=getattr(exc, "retry_after", None)) from exc


async def submit_given_up(services: Services, job: JobRecord, error: str) -> None:
    """The provider stayed unreachable for the whole schedule: fail the task rather than leave
    it pending forever; the message says the outcome at the provider is unknown."""
    message = f"submission outcome unknown, provider unreachable: {error}"
    failed = ProviderTaskState(task_id="", status=ProviderStatus.FAILED, status_message=message)
    await accept(services, str(job.payload["task_id"]), failed)
