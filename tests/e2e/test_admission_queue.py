"""The admission queue end to end: omnihook against a simulated account with 3 slots.

Kling runs few tasks at once per account and refuses a create beyond them (1303). Submitted
all at once, every task must still end succeeded: the ones beyond the slots wait ``queued``
and are sent as slots free, highest priority first, none twice, never more at once than the
account runs; with no slots configured, the provider's own 1303 answers queue them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from service.fake_kling import FakeKlingConfig
from tests.e2e.conftest import Pipeline, PipelineFactory

pytestmark = pytest.mark.e2e

SLOTS = 3


async def account(pipeline: Pipeline) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The simulated account's concurrency record, and its tasks."""
    async with httpx.AsyncClient(base_url=pipeline.fake_url, trust_env=False) as fake:
        seen = (await fake.get("/_sim/tasks")).json()
    return seen["account"], seen["tasks"]


async def submit_all(pipeline: Pipeline, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = await asyncio.gather(*(pipeline.submit(**body) for body in bodies))
    assert all(a.status_code in (201, 202) for a in answers), [a.text for a in answers]
    return [a.json() for a in answers]


async def finish_all(pipeline: Pipeline, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(pipeline.wait_finished(t["id"], timeout=90) for t in tasks)))


def sent_once(tasks: list[dict[str, Any]], simulated: list[dict[str, Any]]) -> None:
    created = [t["external_task_id"] for t in simulated]
    assert sorted(created) == sorted(t["external_task_id"] for t in tasks)  # each exactly once
    assert {t["provider_task_id"] for t in tasks} == {t["task_id"] for t in simulated}


async def test_thirty_tasks_on_three_slots(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(
        FakeKlingConfig(step_seconds=0.1, max_concurrent=SLOTS),
        provider_concurrency=str(SLOTS),
    )
    normal = await submit_all(
        pipeline, [{"prompt": f"a cat, take {n}", "external_task_id": f"n-{n}"} for n in range(27)]
    )
    assert sum(t["status"] == "queued" for t in normal) >= 27 - SLOTS
    urgent = await submit_all(
        pipeline,
        [{"prompt": f"urgent {n}", "external_task_id": f"u-{n}", "priority": 5} for n in range(3)],
    )
    for task in urgent:  # ahead of every normal task in the queue
        assert task["status"] != "queued" or task["queue_position"] <= 3
    listed = (await pipeline.api.get("/v1/tasks", params={"status": "queued", "limit": 100})).json()
    still_queued = {t["external_task_id"] for t in listed["tasks"]} - {
        t["external_task_id"] for t in urgent
    }
    positions = sorted(t["queue_position"] for t in listed["tasks"])
    assert positions == list(range(1, len(positions) + 1))  # a line, no two in one place

    finished = await finish_all(pipeline, normal + urgent)
    assert [t["status"] for t in finished] == ["succeeded"] * 30
    seen, simulated = await account(pipeline)
    assert seen["peak_running"] <= SLOTS  # never more in flight than the account runs
    assert seen["refused_full"] == 0  # ...so the provider never had to refuse one
    sent_once(finished, simulated)
    # Priority: once the urgent tasks were queued, no normal task still waiting went before
    # them, save those admitted with the last urgent one, at most the other slots.
    created = {t["external_task_id"]: t["created_at"] for t in simulated}
    last_urgent = max(created[t["external_task_id"]] for t in urgent)
    overtaking = [e for e in still_queued if created[e] < last_urgent]
    assert len(overtaking) <= SLOTS - 1, overtaking
    for task in finished:
        types = await pipeline.events(task["id"])
        assert types[-1] == "task.completed"
        assert types.count("task.queued") <= 1


async def test_provider_full_answers_queue_the_tasks(make_pipeline: PipelineFactory) -> None:
    """No slots configured: the provider's 1303 answers queue the tasks, none ends 502."""
    pipeline = await make_pipeline(FakeKlingConfig(step_seconds=0.1, max_concurrent=SLOTS))
    tasks = await submit_all(
        pipeline, [{"prompt": f"a dog, take {n}", "external_task_id": f"d-{n}"} for n in range(10)]
    )
    finished = await finish_all(pipeline, tasks)
    assert [t["status"] for t in finished] == ["succeeded"] * 10
    seen, simulated = await account(pipeline)
    assert seen["refused_full"] > 0  # the provider did refuse some: they were queued
    assert seen["peak_running"] <= SLOTS
    sent_once(finished, simulated)
    queued = [t for t in finished if "task.queued" in await pipeline.events(t["id"])]
    assert queued  # announced
    for task in queued:
        types = await pipeline.events(task["id"])
        assert types.index("task.queued") < types.index("task.submitted")
