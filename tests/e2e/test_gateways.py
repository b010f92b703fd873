"""Every API shape end to end: omnihook with ``OMNIHOOK_PROVIDER`` set, against the simulator
speaking that profile, both on loopback. Submit, receive callbacks, download, events once, for
a success and a provider failure; then the faults each profile can produce, per task."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from pathlib import Path
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
FAILURE_EVENTS = ["task.submitted", "task.processing", "task.failed"]


def config(profile: str, **options: Any) -> FakeKlingConfig:
    return FakeKlingConfig(step_seconds=STEP, profile=profile, **options)


# Each profile the way a real account would run it: Kling and new-api sign (the account has a
# webhook secret), apimodels never does (omnihook then confirms final states by a query).
SETUPS: dict[str, tuple[FakeKlingConfig, dict[str, Any]]] = {
    "kling": (config("kling", webhook_secret=SECRET), {"kling_webhook_secret": SECRET}),
    "newapi": (config("newapi", webhook_secret=SECRET), {"kling_webhook_secret": SECRET}),
    "newapi own ids": (
        config("newapi", webhook_secret=SECRET, own_task_ids=True),
        {"kling_webhook_secret": SECRET},
    ),
    "apimodels": (config("apimodels"), {}),
}
CALLBACKS_PER_TASK = {"kling": 3, "newapi": 3, "apimodels": 1}


async def start(make_pipeline: PipelineFactory, setup: str) -> Pipeline:
    fake, settings = SETUPS[setup]
    return await make_pipeline(fake, **settings)


async def downloaded_bytes_match(pipeline: Pipeline, task: dict[str, Any]) -> None:
    [video] = task["videos"]
    stored = Path(video["path"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == video["sha256"]
    [original] = (await pipeline.simulated(task))["videos"]
    async with httpx.AsyncClient(trust_env=False) as fake:
        assert stored == (await fake.get(original["url"])).content


async def callbacks_went_through(pipeline: Pipeline, task: dict[str, Any], count: int) -> None:
    """The simulator sent ``count`` callbacks, omnihook answered each 200 and kept each."""
    async with asyncio.timeout(5):  # the last one may still be on its way
        while True:
            attempts = (await pipeline.simulated(task))["callbacks"]
            if len(attempts) >= count:
                break
            await asyncio.sleep(0.05)
    assert [a["status_code"] for a in attempts] == [200] * count
    kept = (await pipeline.api.get(f"/v1/tasks/{task['id']}/notifications")).json()
    assert len(kept["notifications"]) == count


@pytest.mark.parametrize("setup", list(SETUPS))
async def test_success_and_failure_through_each_shape(
    make_pipeline: PipelineFactory, setup: str
) -> None:
    pipeline = await start(make_pipeline, setup)
    profile = pipeline.settings.provider
    answers = await asyncio.gather(
        pipeline.submit(prompt="a red fox in snow", external_task_id=f"job-{profile}"),
        pipeline.submit(prompt="a broken one [sim:fail=Content policy violation]"),
    )
    assert [answer.status_code for answer in answers] == [201, 201], answers[0].text
    good, bad = await asyncio.gather(
        *(pipeline.wait_finished(answer.json()["id"]) for answer in answers)
    )

    assert good["status"] == "succeeded"
    assert (good["cost"] is None) == (profile == "apimodels")  # apimodels reports no cost
    assert good["request"]["model" if profile != "kling" else "model_name"] == "kling-v3-omni"
    simulated = await pipeline.simulated(good)
    # the id the provider handed out, the one its query endpoint takes
    assert good["provider_task_id"] == (simulated["gateway_task_id"] or simulated["task_id"])
    if setup in ("newapi own ids", "apimodels"):
        assert good["provider_task_id"] != simulated["task_id"]
    await downloaded_bytes_match(pipeline, good)
    await callbacks_went_through(pipeline, good, CALLBACKS_PER_TASK[profile])
    assert await pipeline.events(good["id"]) == SUCCESS_EVENTS

    assert bad["status"] == "failed" and bad["videos"] == []
    assert bad["status_message"] == "Content policy violation"
    await callbacks_went_through(pipeline, bad, CALLBACKS_PER_TASK[profile])
    # apimodels calls back only at the end: a failed task was never seen processing
    expected = FAILURE_EVENTS if profile != "apimodels" else ["task.submitted", "task.failed"]
    assert await pipeline.events(bad["id"]) == expected


# Directives per profile: apimodels calls back once, so reordering or an early callback mean
# nothing there (the simulator refuses them).
FAULTS = {
    "newapi own ids": ["[sim:duplicate] [sim:reorder]", "[sim:early]", "[sim:drop]"],
    "apimodels": ["[sim:duplicate]", "[sim:delay=0.3]", "[sim:drop]"],
}


@pytest.mark.parametrize("setup", list(FAULTS))
async def test_faults_change_nothing_twice(make_pipeline: PipelineFactory, setup: str) -> None:
    pipeline = await start(make_pipeline, setup)
    answers = [await pipeline.submit(prompt=f"waves {fault}") for fault in FAULTS[setup]]
    assert all(answer.status_code == 201 for answer in answers)
    tasks = await asyncio.gather(
        *(pipeline.wait_finished(answer.json()["id"]) for answer in answers)
    )
    for fault, task in zip(FAULTS[setup], tasks, strict=True):
        assert task["status"] == "succeeded", fault
        assert [v["download_status"] for v in task["videos"]] == ["downloaded"], fault
        assert await pipeline.events(task["id"]) == SUCCESS_EVENTS, fault
        sent = (await pipeline.simulated(task))["callbacks"]
        if "drop" in fault:
            assert sent == []  # reconciliation found the result by querying the gateway
        if "early" in fault:
            assert sent[0]["state"] == "submitted" and sent[0]["status_code"] == 200


async def test_unsigned_and_badly_signed_callbacks_are_refused_per_task(
    make_pipeline: PipelineFactory,
) -> None:
    fake, settings = SETUPS["newapi"]
    pipeline = await make_pipeline(fake, **settings)
    prompts = ["plain", "no signature [sim:unsigned]", "wrong signature [sim:badsig]"]
    answers = [await pipeline.submit(prompt=prompt) for prompt in prompts]
    tasks = await asyncio.gather(
        *(pipeline.wait_finished(answer.json()["id"]) for answer in answers)
    )
    plain, unsigned, badsig = tasks
    await callbacks_went_through(pipeline, plain, 3)
    for refused in (unsigned, badsig):
        # refused with 401 and never kept; the task still ends, by reconciliation
        sent = (await pipeline.simulated(refused))["callbacks"]
        assert sent and all(a["status_code"] == 401 for a in sent)
        kept = await pipeline.api.get(f"/v1/tasks/{refused['id']}/notifications")
        assert kept.json()["notifications"] == []
    for task in tasks:
        assert task["status"] == "succeeded"
        assert await pipeline.events(task["id"]) == SUCCESS_EVENTS
