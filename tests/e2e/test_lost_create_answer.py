"""A create the provider accepts but whose answer never arrives (``[sim:lose_answer]``), in each
profile: the task still ends ``succeeded`` with its video, the provider ran it once, the first
create's callbacks were all taken (none answered 404), and nothing was announced twice. For
Kling's shape, also when only the ``?external_task_id=`` query form or only the list finds it,
and when no lookup does (a create sent again is refused as a duplicate: proof it exists)."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from typing import Any

import httpx
import pytest

from service.fake_kling import FakeKlingConfig
from tests.e2e.conftest import Pipeline, PipelineFactory

pytestmark = pytest.mark.e2e

STEP = 0.1
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
SUCCESS_EVENTS = [
    "task.submitted",
    "task.processing",
    "task.succeeded",
    "video.downloaded",
    "task.completed",
]
# Generous: a submit job waits 10 s before it looks, then the task runs; a slow 2-core machine.
FINISH_WITHIN = 90.0


def signed(profile: str, **options: Any) -> tuple[FakeKlingConfig, dict[str, Any]]:
    fake = FakeKlingConfig(step_seconds=STEP, profile=profile, webhook_secret=SECRET, **options)
    return fake, {"kling_webhook_secret": SECRET}


SETUPS: dict[str, tuple[FakeKlingConfig, dict[str, Any]]] = {
    "kling": signed("kling"),
    "newapi": signed("newapi"),
    "newapi own ids": signed("newapi", own_task_ids=True),
    "apimodels": (FakeKlingConfig(step_seconds=STEP, profile="apimodels"), {}),
}
CALLBACKS_PER_TASK = {"kling": 3, "newapi": 3, "apimodels": 1}


async def sim_tasks(pipeline: Pipeline) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=pipeline.fake_url, trust_env=False) as fake:
        tasks: list[dict[str, Any]] = (await fake.get("/_sim/tasks")).json()["tasks"]
    return tasks


async def submit_lost(pipeline: Pipeline, prompt: str, external_id: str) -> dict[str, Any]:
    answer = await pipeline.submit(prompt=prompt, external_task_id=external_id)
    # Found at once by a lookup (201), or pending while a job finds it (202): never refused.
    assert answer.status_code in (201, 202), answer.text
    task: dict[str, Any] = answer.json()
    assert task["status"] != "failed"
    return task


async def all_callbacks_taken(pipeline: Pipeline, task: dict[str, Any], count: int) -> None:
    """The simulator sent ``count`` callbacks with the first create's URL, each answered 200."""
    async with asyncio.timeout(10):  # the last one may still be on its way
        while True:
            attempts = (await pipeline.simulated(task))["callbacks"]
            if len(attempts) >= count:
                break
            await asyncio.sleep(0.05)
    assert [a["status_code"] for a in attempts] == [200] * count, attempts


async def ends_once_with_its_video(pipeline: Pipeline, task: dict[str, Any]) -> dict[str, Any]:
    done = await pipeline.wait_finished(task["id"], timeout=FINISH_WITHIN)
    assert done["status"] == "succeeded", done
    assert [v["download_status"] for v in done["videos"]] == ["downloaded"]
    simulated = await pipeline.simulated(done)
    assert simulated["task_status"] == "succeed"
    assert done["provider_task_id"] == (simulated["gateway_task_id"] or simulated["task_id"])
    assert await pipeline.events(done["id"]) == SUCCESS_EVENTS  # nothing announced twice
    return done


@pytest.mark.parametrize("setup", list(SETUPS))
async def test_a_lost_create_answer_ends_succeeded_once(
    make_pipeline: PipelineFactory, setup: str
) -> None:
    fake, settings = SETUPS[setup]
    pipeline = await make_pipeline(fake, **settings)
    task = await submit_lost(pipeline, "a heron [sim:lose_answer]", f"lost-{fake.profile}")
    done = await ends_once_with_its_video(pipeline, task)
    assert len(await sim_tasks(pipeline)) == 1  # the provider ran one task: paid once
    await all_callbacks_taken(pipeline, done, CALLBACKS_PER_TASK[fake.profile])


@pytest.mark.parametrize("form", ["query", "list"])
async def test_a_task_found_only_by_a_later_lookup_form(
    make_pipeline: PipelineFactory, form: str
) -> None:
    # No callbacks: only the submit job's lookups can find the task; the path form cannot.
    fake, settings = SETUPS["kling"]
    pipeline = await make_pipeline(fake, **settings)
    prompt = f"a heron [sim:lose_answer][sim:lookup={form}][sim:drop]"
    task = await submit_lost(pipeline, prompt, f"lost-by-{form}")
    await ends_once_with_its_video(pipeline, task)
    assert len(await sim_tasks(pipeline)) == 1


async def test_a_duplicate_refusal_proves_the_task_exists(make_pipeline: PipelineFactory) -> None:
    # No lookup finds it; the create sent again is refused as a duplicate, so the task stays
    # pending (never failed, never deleted), and the first create's callbacks finish it.
    fake, settings = SETUPS["kling"]
    pipeline = await make_pipeline(fake, **settings)
    task = await submit_lost(pipeline, "a heron [sim:lose_answer][sim:lookup=none]", "lost-hidden")
    # The answer is the task as stored when the submission ended: pending, or already told
    # by the first create's callbacks (they may arrive while the client looks it up), then
    # with that create's task id
    [simulated] = await sim_tasks(pipeline)
    assert task["status"] == "pending" or task["provider_task_id"] == simulated["task_id"], task
    done = await ends_once_with_its_video(pipeline, task)
    assert len(await sim_tasks(pipeline)) == 1
    await all_callbacks_taken(pipeline, done, CALLBACKS_PER_TASK["kling"])


async def test_a_gateway_without_lookups_keeps_a_proven_task_pending(
    make_pipeline: PipelineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # new-api cannot find our id, and no callback comes: the submit job sends the create again
    # (the gateway relays Kling's duplicate refusal), which proves the task: pending it stays.
    caplog.set_level(logging.INFO, logger="service.submit.job")
    fake, settings = SETUPS["newapi own ids"]
    pipeline = await make_pipeline(fake, **settings)
    task = await submit_lost(pipeline, "a heron [sim:lose_answer][sim:drop]", "lost-unseen")
    async with asyncio.timeout(FINISH_WITHIN):
        while True:
            if any(getattr(r, "action", None) == "submit.exists_unseen" for r in caplog.records):
                break
            await asyncio.sleep(0.2)
    now = (await pipeline.api.get(f"/v1/tasks/{task['id']}")).json()
    assert now["status"] == "pending", now
    assert len(await sim_tasks(pipeline)) == 1
