"""Callbacks of every profile and the per-task faults, with real servers on loopback.

Each received body is also read by omnihook's own parser, so a shape the simulator sends is a
shape the receiver understands.
"""

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
from service.fake_kling.callbacks import RetryPolicy
from service.kling.notification import parse_notification
from service.kling.state import ProviderStatus
from service.loopback import serve_on_loopback

from .helpers import AUTH, CREATE, body
from .receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

STEP = 0.05
SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
RETRY_WINDOW, RETRY_DELAY = 0.5, 0.05
ROUTES = {"kling": CREATE, "newapi": "/kling" + CREATE, "apimodels": "/api/v1/video/generations"}


@dataclass
class Stack:
    profile: str
    fake_url: str
    receiver_url: str
    receiver: Receiver
    client: httpx.AsyncClient

    async def create(self, prompt: str, *, route: str = "cb") -> tuple[str, str]:
        """Create a task calling back to a fresh key; returns ``(id handed out, key)``."""
        key = uuid.uuid4().hex
        request = body(prompt, callback_url=f"{self.receiver_url}/{route}/{key}")
        request["external_task_id"] = key
        if self.profile != "kling":
            request["model"] = request.pop("model_name")
        response = await self.client.post(ROUTES[self.profile], json=request)
        assert response.status_code == 200, response.text
        answer = response.json()
        if self.profile == "kling":
            return answer["data"]["task_id"], key
        return (answer["id"] if self.profile == "newapi" else answer["data"]["taskId"]), key

    async def sim_task(self, key: str) -> dict[str, Any]:
        tasks = (await self.client.get("/_sim/tasks")).json()["tasks"]
        return next(task for task in tasks if task["external_task_id"] == key)

    async def settle(self, key: str, callbacks: int, *, quiet: float = 2 * STEP) -> None:
        """Wait until the task ended and ``callbacks`` attempts were made; then a little more,
        so a callback that should not come would have come."""
        async with asyncio.timeout(5):
            while True:
                task = await self.sim_task(key)
                ended = task["task_status"] in ("succeed", "failed")
                if ended and len(task["callbacks"]) >= callbacks:
                    break
                await asyncio.sleep(0.01)
        await asyncio.sleep(quiet)


@asynccontextmanager
async def running(config: FakeKlingConfig) -> AsyncIterator[Stack]:
    receiver = Receiver()
    async with (
        serve_on_loopback(receiver.app()) as receiver_url,
        serve_on_loopback(create_fake_kling_app(config)) as fake_url,
        httpx.AsyncClient(base_url=fake_url, headers=AUTH, trust_env=False) as client,
    ):
        yield Stack(config.profile, fake_url, receiver_url, receiver, client)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def newapi() -> AsyncIterator[Stack]:
    config = FakeKlingConfig(
        step_seconds=STEP, profile="newapi", own_task_ids=True, webhook_secret=SECRET
    )
    async with running(config) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def apimodels() -> AsyncIterator[Stack]:
    config = FakeKlingConfig(
        step_seconds=STEP,
        profile="apimodels",
        callback_retry_window=RETRY_WINDOW,
        callback_retry_delay=RETRY_DELAY,
    )
    async with running(config) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kling_signed() -> AsyncIterator[Stack]:
    async with running(FakeKlingConfig(step_seconds=STEP, webhook_secret=SECRET)) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kling_unsigned() -> AsyncIterator[Stack]:
    async with running(FakeKlingConfig(step_seconds=STEP)) as stack:
        yield stack


def verifies(item: Any, secret: str = SECRET) -> bool:
    try:
        Webhook(secret).verify(item.raw, item.headers)
    except WebhookVerificationError:
        return False
    return True


# --- newapi: Kling's callbacks, named by the gateway's id --------------------------------------


async def test_newapi_calls_back_every_state_under_its_own_id(newapi: Stack) -> None:
    task_id, key = await newapi.create("a cat")
    await newapi.settle(key, 3)
    items = newapi.receiver.for_key(key)
    assert [item.state for item in items] == ["submitted", "processing", "succeed"]
    assert task_id.startswith("task_")
    for item in items:
        assert item.json["task_id"] == task_id and verifies(item)
        state = parse_notification(item.raw)
        assert (state.task_id, state.external_task_id) == (task_id, key)
    final = parse_notification(items[-1].raw)
    assert final.status is ProviderStatus.SUCCEEDED and len(final.videos) == 1


@pytest.mark.parametrize(
    ("directive", "states"),
    [
        ("[sim:duplicate]", ["submitted"] * 2 + ["processing"] * 2 + ["succeed"] * 2),
        ("[sim:reorder]", ["submitted", "succeed", "processing"]),
        ("[sim:drop]", []),
        ("[sim:fail]", ["submitted", "processing", "failed"]),
    ],
)
async def test_newapi_directives(newapi: Stack, directive: str, states: list[str]) -> None:
    _, key = await newapi.create(f"a cat {directive}")
    await newapi.settle(key, len(states))
    assert newapi.receiver.states(key) == states


async def test_newapi_early_callback_comes_before_the_create_answer(newapi: Stack) -> None:
    task_id, key = await newapi.create("a cat [sim:early]")
    [early] = newapi.receiver.for_key(key)  # already in when create() returned
    assert early.state == "submitted" and early.json["task_id"] == task_id


@pytest.mark.parametrize(
    ("directive", "signed", "valid"),
    [("[sim:unsigned]", False, False), ("[sim:badsig]", True, False), ("", True, True)],
)
async def test_signing_per_task(
    newapi: Stack, kling_signed: Stack, directive: str, signed: bool, valid: bool
) -> None:
    for stack in (newapi, kling_signed):
        _, key = await stack.create(f"a cat {directive}")
        await stack.settle(key, 3, quiet=0)
        items = stack.receiver.for_key(key)
        assert [item.signed for item in items] == [signed] * 3
        assert [verifies(item) for item in items] == [valid] * 3


async def test_badsig_without_a_configured_secret_still_sends_a_wrong_signature(
    kling_unsigned: Stack,
) -> None:
    _, plain = await kling_unsigned.create("a cat")
    _, spoiled = await kling_unsigned.create("a cat [sim:badsig]")
    await kling_unsigned.settle(plain, 3, quiet=0)
    await kling_unsigned.settle(spoiled, 3, quiet=0)
    assert not any(item.signed for item in kling_unsigned.receiver.for_key(plain))
    items = kling_unsigned.receiver.for_key(spoiled)
    assert all(item.signed and not verifies(item) for item in items)


# --- apimodels: one final callback, its query envelope, retried until 200 ----------------------


async def test_apimodels_calls_back_once_with_the_query_envelope(apimodels: Stack) -> None:
    task_id, key = await apimodels.create("a cat")
    await apimodels.settle(key, 1)
    [item] = apimodels.receiver.for_key(key)
    assert not item.signed
    query = await apimodels.client.get(ROUTES["apimodels"], params={"task_id": task_id})
    assert item.json == query.json()  # the very envelope a query answers
    assert item.json["data"]["state"] == "completed"
    state = parse_notification(item.raw)
    assert (state.task_id, state.status) == (task_id, ProviderStatus.SUCCEEDED)
    [url] = item.json["data"]["resultUrls"]
    assert [video.url for video in state.videos] == [url]


async def test_apimodels_failure_callback(apimodels: Stack) -> None:
    _, key = await apimodels.create("a cat [sim:fail=Content policy violation]")
    await apimodels.settle(key, 1)
    [item] = apimodels.receiver.for_key(key)
    state = parse_notification(item.raw)
    assert (state.status, state.status_message) == (
        ProviderStatus.FAILED,
        "Content policy violation",
    )


async def test_apimodels_retries_until_answered_200(apimodels: Stack) -> None:
    _, key = await apimodels.create("a cat", route="flaky")
    await apimodels.settle(key, Receiver.FLAKY_FAILURES + 1)
    attempts = (await apimodels.sim_task(key))["callbacks"]
    assert [a["status_code"] for a in attempts] == [500] * Receiver.FLAKY_FAILURES + [200]
    bodies = {item.raw for item in apimodels.receiver.for_key(key)}
    assert len(bodies) == 1  # the same callback each time


async def test_apimodels_gives_up_after_the_retry_window(apimodels: Stack) -> None:
    planned = RetryPolicy(RETRY_WINDOW, RETRY_DELAY).delays()
    assert sum(planned) <= RETRY_WINDOW and len(planned) >= 2
    _, key = await apimodels.create("a cat", route="fail")
    await apimodels.settle(key, 1 + len(planned), quiet=RETRY_WINDOW)
    attempts = (await apimodels.sim_task(key))["callbacks"]
    assert [a["status_code"] for a in attempts] == [500] * (1 + len(planned))
    span = (attempts[-1]["sent_at"] - attempts[0]["sent_at"]) / 1000
    assert sum(planned) - 0.05 <= span <= RETRY_WINDOW + 0.5


@pytest.mark.parametrize(("directive", "count"), [("[sim:duplicate]", 2), ("[sim:drop]", 0)])
async def test_apimodels_duplicate_and_drop(apimodels: Stack, directive: str, count: int) -> None:
    _, key = await apimodels.create(f"a cat {directive}")
    await apimodels.settle(key, count)
    items = apimodels.receiver.for_key(key)
    assert [item.state for item in items] == ["completed"] * count
    assert len({item.raw for item in items}) == min(count, 1)


async def test_apimodels_delay(apimodels: Stack) -> None:
    started = time.monotonic()
    _, key = await apimodels.create("a cat [sim:delay=0.3]")
    await apimodels.settle(key, 1)
    [item] = apimodels.receiver.for_key(key)
    assert item.at - started >= 2 * STEP + 0.3
