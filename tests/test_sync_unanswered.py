"""A task no create answer named (its answer was lost) and an unsigned final callback: the
confirmation finds nothing by our external id, so it asks the provider about the id the callback
claims, and applies that answer only when it is about this task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage.records import TaskStatus
from tests.receiver_support import Receiver, kling_task, open_receiver

TOKEN = "token-of-the-first-create"
CLAIMED = "867283741759111202"


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    async with open_receiver(tmp_path) as opened:
        yield opened


async def unsigned_final_callback(receiver: Receiver, answer: dict[str, Any] | None) -> str:
    """A pending task, its unsigned ``succeed`` callback naming CLAIMED, the provider's own
    ``answer`` for CLAIMED; the jobs run. Answers the task's id."""
    task = await receiver.add_task(
        TOKEN, status=TaskStatus.PENDING, provider_task_id=None, external_task_id="job-lost"
    )
    if answer is not None:
        receiver.provider.tasks[CLAIMED] = answer
    body = kling_task(CLAIMED, "succeed", external_task_id="job-lost")
    assert (await receiver.post(TOKEN, body)).status_code == 200
    await receiver.run_jobs()
    return task.id


async def test_the_claimed_id_confirmed_by_the_provider_finishes_the_task(
    receiver: Receiver,
) -> None:
    answer = kling_task(CLAIMED, "succeed", external_task_id="job-lost")
    task = await receiver.task(await unsigned_final_callback(receiver, answer))
    assert task.status == TaskStatus.SUCCEEDED
    assert task.provider_task_id == CLAIMED
    assert "job-lost" in receiver.provider.queries and CLAIMED in receiver.provider.queries


@pytest.mark.parametrize(
    "answer",
    [
        kling_task(CLAIMED, "succeed", external_task_id="someone-else"),
        kling_task(CLAIMED, "succeed"),  # Kling names our external id: this one is not ours
        None,  # the provider does not know the claimed id
    ],
    ids=["another external id", "no external id", "unknown"],
)
async def test_a_claim_the_provider_does_not_back_is_not_applied(
    receiver: Receiver, answer: dict[str, Any] | None
) -> None:
    task = await receiver.task(await unsigned_final_callback(receiver, answer))
    assert task.status == TaskStatus.PENDING
    assert task.provider_task_id is None
