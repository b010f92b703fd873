"""Progression and callbacks end to end: the fake and a receiver, both real servers on loopback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.loopback import serve_on_loopback

from .helpers import AUTH, CREATE, body, eventually, top_level_boxes, wait_final
from .receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

STEP = 0.05
SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="


@dataclass
class Stack:
    fake_url: str
    receiver_url: str
    receiver: Receiver
    client: httpx.AsyncClient

    async def create(self, prompt: str, **fields: Any) -> tuple[str, str]:
        """Create a task calling back to a fresh key; returns ``(task_id, key)``."""
        key = uuid.uuid4().hex
        callback_url = f"{self.receiver_url}/cb/{key}"
        request = body(prompt, callback_url=callback_url, **fields)
        response = await self.client.post(CREATE, json=request)
        assert response.status_code == 200, response.text
        return response.json()["data"]["task_id"], key

    async def sim_task(self, task_id: str) -> dict[str, Any]:
        tasks = (await self.client.get("/_sim/tasks")).json()["tasks"]
        return next(task for task in tasks if task["task_id"] == task_id)

    async def settle(self, task_id: str, expected_callbacks: int) -> None:
        """Wait until the task ended and the fake recorded all its callback attempts."""
        await wait_final(self.client, task_id)
        async with asyncio.timeout(3):
            while True:
                if len((await self.sim_task(task_id))["callbacks"]) >= expected_callbacks:
                    break
                await asyncio.sleep(0.01)
        await asyncio.sleep(2 * STEP)  # room for any callback that should not come


@asynccontextmanager
async def running_stack(config: FakeKlingConfig) -> AsyncIterator[Stack]:
    receiver = Receiver()
    async with (
        serve_on_loopback(receiver.app()) as receiver_url,
        serve_on_loopback(create_fake_kling_app(config)) as fake_url,
        httpx.AsyncClient(base_url=fake_url, headers=AUTH, trust_env=False) as client,
    ):
        yield Stack(fake_url, receiver_url, receiver, client)


# One pair of servers per module (tasks are told apart by their callback key): starting and
# stopping uvicorn twice per test would dominate the run time.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack(FakeKlingConfig(step_seconds=STEP)) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def signed_stack() -> AsyncIterator[Stack]:
    async with running_stack(FakeKlingConfig(step_seconds=STEP, webhook_secret=SECRET)) as running:
        yield running


async def test_normal_task_calls_back_every_state(stack: Stack) -> None:
    task_id, key = await stack.create("a cat", external_task_id="job-e2e")
    await stack.settle(task_id, 3)
    assert stack.receiver.states(key) == ["submitted", "processing", "succeed"]
    bodies = [item.json for item in stack.receiver.for_key(key)]
    for item in stack.receiver.for_key(key):
        assert item.headers["content-type"] == "application/json"
        assert "webhook-signature" not in item.headers  # no secret, no signature
    for payload in bodies:
        assert "code" not in payload and "data" not in payload  # bare task object
        assert payload["task_id"] == task_id
        assert payload["task_info"] == {"external_task_id": "job-e2e"}
    final = bodies[-1]
    assert isinstance(final["final_unit_deduction"], str)
    [video] = final["task_result"]["videos"]
    assert video["url"].startswith(f"{stack.fake_url}/media/{video['id']}.mp4")
    download = await stack.client.get(video["url"])
    assert download.status_code == 200
    assert top_level_boxes(download.content)[-1][0] == b"free"
    sim = await stack.sim_task(task_id)
    assert [(c["state"], c["status_code"]) for c in sim["callbacks"]] == [
        ("submitted", 200),
        ("processing", 200),
        ("succeed", 200),
    ]


async def test_gateway_prefix_builds_root_media_urls(stack: Stack) -> None:
    key = uuid.uuid4().hex
    request = body("a cat", callback_url=f"{stack.receiver_url}/cb/{key}")
    created = await stack.client.post("/kling" + CREATE, json=request)
    data = await wait_final(stack.client, created.json()["data"]["task_id"])
    url = data["task_result"]["videos"][0]["url"]
    assert url.startswith(f"{stack.fake_url}/media/")
    assert (await stack.client.head(url)).status_code == 200


async def test_failed_task(stack: Stack) -> None:
    task_id, key = await stack.create("[sim:fail=Content too spicy]")
    await stack.settle(task_id, 3)
    assert stack.receiver.states(key) == ["submitted", "processing", "failed"]
    final = stack.receiver.for_key(key)[-1].json
    assert final["task_status_msg"] == "Content too spicy"
    assert final["task_result"] == {}


async def test_duplicate(stack: Stack) -> None:
    task_id, key = await stack.create("[sim:duplicate]")
    await stack.settle(task_id, 6)
    states = stack.receiver.states(key)
    assert states == ["submitted", "submitted", "processing", "processing", "succeed", "succeed"]
    items = stack.receiver.for_key(key)
    assert items[4].raw == items[5].raw


async def test_reorder(stack: Stack) -> None:
    task_id, key = await stack.create("[sim:reorder]")
    await stack.settle(task_id, 3)
    assert stack.receiver.states(key) == ["submitted", "succeed", "processing"]


async def test_drop(stack: Stack) -> None:
    task_id, key = await stack.create("[sim:drop]")
    await stack.settle(task_id, 0)
    assert stack.receiver.for_key(key) == []
    assert (await wait_final(stack.client, task_id))["task_status"] == "succeed"
    assert (await stack.sim_task(task_id))["callbacks"] == []


async def test_early_callback_arrives_before_the_create_response(stack: Stack) -> None:
    task_id, key = await stack.create("[sim:early]")
    # create() has returned: the submitted callback must already be in
    assert stack.receiver.states(key) == ["submitted"]
    assert stack.receiver.for_key(key)[0].json["task_id"] == task_id
    await stack.settle(task_id, 3)
    assert stack.receiver.states(key) == ["submitted", "processing", "succeed"]


async def test_delay_postpones_each_callback(stack: Stack) -> None:
    started = time.monotonic()
    task_id, key = await stack.create("[sim:delay=0.2]")
    await stack.settle(task_id, 3)
    items = stack.receiver.for_key(key)
    assert [item.state for item in items] == ["submitted", "processing", "succeed"]
    assert items[0].at - started >= 0.2
    assert items[2].at - started >= 0.6  # three delays in a row


async def test_failing_receiver_is_recorded_not_fatal(stack: Stack) -> None:
    key = uuid.uuid4().hex
    request = body("a cat", callback_url=f"{stack.receiver_url}/fail/{key}")
    task_id = (await stack.client.post(CREATE, json=request)).json()["data"]["task_id"]
    await stack.settle(task_id, 3)
    assert [c["status_code"] for c in (await stack.sim_task(task_id))["callbacks"]] == [500] * 3


async def test_unreachable_receiver_is_recorded_not_fatal(stack: Stack) -> None:
    async with serve_on_loopback(Receiver().app()) as gone_url:
        pass  # the port is closed again: connections are refused
    request = body("a cat", callback_url=f"{gone_url}/cb/x")
    task_id = (await stack.client.post(CREATE, json=request)).json()["data"]["task_id"]
    await stack.settle(task_id, 3)
    callbacks = (await stack.sim_task(task_id))["callbacks"]
    assert all(c["status_code"] is None and c["error"] for c in callbacks)
    assert (await stack.client.get(CREATE)).status_code == 200


class TestSigned:
    async def test_callbacks_verify_with_standard_webhooks(self, signed_stack: Stack) -> None:
        stack = signed_stack
        task_id, key = await stack.create("[sim:duplicate]")
        await stack.settle(task_id, 6)
        items = stack.receiver.for_key(key)
        assert len(items) == 6
        webhook = Webhook(SECRET)
        for item in items:
            payload = webhook.verify(item.raw, item.headers)
            assert payload["task_id"] == task_id
        # a duplicate is the same message sent again: same webhook-id
        assert items[0].headers["webhook-id"] == items[1].headers["webhook-id"]
        assert items[0].headers["webhook-id"] != items[2].headers["webhook-id"]

    async def test_wrong_secret_does_not_verify(self, signed_stack: Stack) -> None:
        stack = signed_stack
        task_id, key = await stack.create("a cat")
        await stack.settle(task_id, 3)
        item = stack.receiver.for_key(key)[0]
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "QUJD" * 8).verify(item.raw, item.headers)


async def test_running_tasks_are_cancelled_at_shutdown() -> None:
    receiver = Receiver()
    started = time.monotonic()
    async with serve_on_loopback(receiver.app()) as receiver_url:
        app = create_fake_kling_app(FakeKlingConfig(step_seconds=30))
        async with (
            serve_on_loopback(app) as fake_url,
            httpx.AsyncClient(base_url=fake_url, headers=AUTH, trust_env=False) as client,
        ):
            request = body("a cat", callback_url=f"{receiver_url}/cb/k")
            assert (await client.post(CREATE, json=request)).status_code == 200
            await eventually(lambda: receiver.states("k") == ["submitted"])
    assert time.monotonic() - started < 5
