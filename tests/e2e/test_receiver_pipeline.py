"""End to end over loopback: the simulated provider signs its callbacks (Standard Webhooks),
omnihook verifies them; spoiled or missing signatures are refused and reconciliation still
finishes the task; without signing, final states are confirmed by a query; a task that does not
finish by its deadline times out."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from service.app import create_app
from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.loopback import serve_on_loopback
from service.settings import load_settings
from tests.e2e.conftest import Pipeline, free_port

pytestmark = pytest.mark.e2e

NEW_SECRET = "whsec_" + base64.b64encode(b"e2e-new-secret-0123456789abcdef!").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"e2e-old-secret-0123456789abcdef!").decode()

Factory = Callable[..., Awaitable[Pipeline]]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Factory]:
    """``await make(provider_secret, omnihook_secrets)``: the simulator signing with the first
    (or not at all), omnihook requiring one of the second (or no signature); ``step_seconds``
    paces the simulator, other keywords are omnihook settings."""
    async with AsyncExitStack() as stack:

        async def build(
            provider_secret: str | None,
            omnihook_secret: str | None,
            *,
            step_seconds: float = 0.1,
            **overrides: Any,
        ) -> Pipeline:
            fake = create_fake_kling_app(
                FakeKlingConfig(step_seconds=step_seconds, webhook_secret=provider_secret)
            )
            fake_url = await stack.enter_async_context(serve_on_loopback(fake))
            port = free_port()
            settings = load_settings(
                database_url=f"sqlite:///{tmp_path / 'omnihook.db'}",
                media_dir=tmp_path / "media",
                public_url=f"http://127.0.0.1:{port}",
                kling_base_url=fake_url,
                kling_api_key="e2e-key",
                kling_webhook_secret=omnihook_secret,
                allow_private_networks=True,
                **{"download_retry_schedule": "0.2,0.4", "reconcile_after": 1.0, **overrides},
            )
            url = await stack.enter_async_context(
                serve_on_loopback(create_app(settings, with_worker=True), port=port)
            )
            api = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            return Pipeline(url, fake_url, api, settings, tmp_path / "unused.jsonl")

        yield build


async def simulated(pipeline: Pipeline, task: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=pipeline.fake_url) as fake:
        tasks = (await fake.get("/_sim/tasks")).json()["tasks"]
    [found] = [t for t in tasks if t["external_task_id"] == task["external_task_id"]]
    return dict(found)


async def notifications(pipeline: Pipeline, task_id: str) -> list[dict[str, Any]]:
    answer = await pipeline.api.get(f"/v1/tasks/{task_id}/notifications")
    found: list[dict[str, Any]] = answer.json()["notifications"]
    return found


async def finished(pipeline: Pipeline, prompt: str) -> dict[str, Any]:
    answer = await pipeline.submit(prompt=prompt)
    assert answer.status_code == 201, answer.text
    task = await pipeline.wait_finished(answer.json()["id"])
    assert task["status"] == "succeeded"
    assert [v["download_status"] for v in task["videos"]] == ["downloaded"]
    return task


async def test_signed_callbacks_are_verified_and_used_as_they_are(make: Factory) -> None:
    pipeline = await make(NEW_SECRET, NEW_SECRET)
    task = await finished(pipeline, "a signed sunrise")
    stored = await notifications(pipeline, task["id"])
    assert stored and all(n["verification"].startswith("signed: ") for n in stored)
    assert all(n["headers"]["webhook-signature"].startswith("v1,") for n in stored)
    outcomes = [n["outcome"] for n in stored]
    assert "processing -> succeeded" in outcomes  # no confirmation query was needed
    assert not any("confirming" in o for o in outcomes)


async def test_during_a_rotation_the_old_secret_still_verifies(make: Factory) -> None:
    pipeline = await make(OLD_SECRET, f"{NEW_SECRET},{OLD_SECRET}")
    task = await finished(pipeline, "a rotated secret")
    stored = await notifications(pipeline, task["id"])
    assert stored and all("secret 2 of 2" in n["verification"] for n in stored)


@pytest.mark.parametrize("directive", ["[sim:badsig]", "[sim:unsigned]"])
async def test_bad_or_missing_signatures_are_refused_and_reconciliation_finishes(
    make: Factory, directive: str
) -> None:
    pipeline = await make(NEW_SECRET, NEW_SECRET)
    task = await finished(pipeline, f"a forged tide {directive}")
    codes = {c["status_code"] for c in (await simulated(pipeline, task))["callbacks"]}
    assert codes == {401}
    assert await notifications(pipeline, task["id"]) == []  # nothing stored
    assert await pipeline.events(task["id"]) == [
        "task.submitted",
        "task.processing",
        "task.succeeded",
        "video.downloaded",
        "task.completed",
    ]


async def test_without_signing_the_final_state_is_confirmed_by_a_query(make: Factory) -> None:
    pipeline = await make(None, None)
    task = await finished(pipeline, "an unsigned harbour")
    stored = await notifications(pipeline, task["id"])
    assert all(n["verification"].startswith("unsigned: ") for n in stored)
    outcomes = [n["outcome"] for n in stored]
    assert "unsigned succeeded notification: confirming with the provider" in outcomes
    [video] = task["videos"]
    assert video["size"] > 0


async def test_the_signature_tolerance_is_five_minutes(make: Factory) -> None:
    """A notification signed like the provider does, sent by hand a little early or late."""
    pipeline = await make(NEW_SECRET, NEW_SECRET)
    task = await finished(pipeline, "a patient heron")
    callback_url = (await simulated(pipeline, task))["callback_url"]
    body = json.dumps({"task_id": task["provider_task_id"], "task_status": "processing"}).encode()
    answers = {}
    for minutes in (-6, -4, 4, 6):
        at = datetime.now(UTC) + timedelta(minutes=minutes)
        headers = {
            "content-type": "application/json",
            "webhook-id": f"msg_by_hand_{minutes}",
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(NEW_SECRET).sign(
                f"msg_by_hand_{minutes}", at, body.decode()
            ),
        }
        async with httpx.AsyncClient() as client:
            answers[minutes] = await client.post(callback_url, content=body, headers=headers)
    assert {m: a.status_code for m, a in answers.items()} == {-6: 401, -4: 200, 4: 200, 6: 401}


async def test_a_task_unfinished_at_its_deadline_times_out_once(make: Factory) -> None:
    # The simulator takes 30 s per step; omnihook gives a task 1.5 s.
    pipeline = await make(None, None, step_seconds=30, task_deadline=1.5, reconcile_after=0.3)
    answer = await pipeline.submit(prompt="a glacier, slowly")
    task = await pipeline.wait_finished(answer.json()["id"], timeout=15)
    assert task["status"] == "failed"
    assert task["status_message"].startswith(
        "timed out: no final state from the provider after 1.5 s (last known state: "
    )
    events = await pipeline.events(task["id"])
    assert events[-2:] == ["task.timed_out", "task.failed"]
    assert events.count("task.failed") == 1
