"""The gateway profiles through ASGITransport: paths, auth, create/query shapes, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.fake_kling.config import KNOWN_PROFILES
from service.fake_kling.profiles import PROFILES
from service.fake_kling.profiles.newapi import STATUS_WORDS
from service.fake_kling.store import TaskStatus
from service.kling.state import ProviderStatus, normalise_status

from .helpers import AUTH, BASE, WAIT, body

NEWAPI = "/kling/v1/videos/omni-video"
APIMODELS = "/api/v1/video/generations"


def gateway_body(prompt: str = "a cat surfing", **fields: Any) -> dict[str, Any]:
    """A create body with the model under ``model``, as both gateways want it."""
    request = body(prompt, **fields)
    return {"model": request.pop("model_name"), **request}


async def open_client(config: FakeKlingConfig) -> AsyncIterator[httpx.AsyncClient]:
    app = create_fake_kling_app(config)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE, headers=AUTH
        ) as client,
    ):
        yield client


@pytest.fixture
async def newapi() -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(FakeKlingConfig(step_seconds=0.02, profile="newapi")):
        yield client


@pytest.fixture
async def newapi_own_ids() -> AsyncIterator[httpx.AsyncClient]:
    config = FakeKlingConfig(step_seconds=0.02, profile="newapi", own_task_ids=True)
    async for client in open_client(config):
        yield client


@pytest.fixture
async def apimodels() -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(FakeKlingConfig(step_seconds=0.02, profile="apimodels")):
        yield client


async def poll(client: httpx.AsyncClient, url: str, done: set[str], key: str) -> Any:
    async with asyncio.timeout(WAIT):
        while True:
            data = (await client.get(url)).json()["data"]
            if data[key] in done:
                return data
            await asyncio.sleep(0.01)


def test_every_known_profile_has_a_module() -> None:
    assert set(PROFILES) == set(KNOWN_PROFILES) == {"kling", "newapi", "apimodels"}


# --- newapi --------------------------------------------------------------------------------------


async def test_newapi_create_answers_the_openai_video_object(newapi: httpx.AsyncClient) -> None:
    response = await newapi.post(NEWAPI, json=gateway_body(external_task_id="job-1"))
    assert response.status_code == 200, response.text
    created = response.json()
    assert set(created) == {"id", "task_id", "object", "model", "created_at"}
    assert created["object"] == "video" and created["model"] == "kling-v3-omni"
    assert created["id"] == created["task_id"] and created["id"].isdigit()  # Kling's id
    assert 1_700_000_000 < created["created_at"] < 10_000_000_000  # seconds, not ms


async def test_newapi_wants_model_not_model_name(newapi: httpx.AsyncClient) -> None:
    response = await newapi.post(NEWAPI, json=body())
    assert response.status_code == 400
    assert response.json() == {
        "code": "task_failed",
        "message": "Invalid parameter model: is required",
        "data": None,
    }


async def test_newapi_query_wraps_klings_answer(newapi: httpx.AsyncClient) -> None:
    created = (await newapi.post(NEWAPI, json=gateway_body(external_task_id="job-2"))).json()
    data = await poll(newapi, f"{NEWAPI}/{created['id']}", {"SUCCESS"}, "status")
    assert data["task_id"] == created["id"] and data["progress"] == "100%"
    assert data["finish_time"] >= data["submit_time"] > 1_700_000_000
    inner = data["data"]
    assert (inner["code"], inner["message"]) == (0, "SUCCEED")
    assert inner["data"]["task_status"] == "succeed"
    assert inner["data"]["task_info"] == {"external_task_id": "job-2"}
    [video] = inner["data"]["task_result"]["videos"]
    assert video["url"].startswith(f"{BASE}/media/")


async def test_newapi_failure(newapi: httpx.AsyncClient) -> None:
    created = (await newapi.post(NEWAPI, json=gateway_body("[sim:fail=Bad light]"))).json()
    data = await poll(newapi, f"{NEWAPI}/{created['id']}", {"FAILURE"}, "status")
    assert data["fail_reason"] == "Bad light"
    assert data["data"]["data"]["task_status_msg"] == "Bad light"


async def test_newapi_own_ids_are_the_only_ones_its_query_takes(
    newapi_own_ids: httpx.AsyncClient,
) -> None:
    client = newapi_own_ids
    created = (await client.post(NEWAPI, json=gateway_body(external_task_id="job-3"))).json()
    assert created["id"].startswith("task_")
    data = (await client.get(f"{NEWAPI}/{created['id']}")).json()["data"]
    kling_id = data["data"]["data"]["task_id"]
    assert kling_id != created["id"] and kling_id.isdigit()
    for other in (kling_id, "job-3"):
        missing = await client.get(f"{NEWAPI}/{other}")
        assert missing.status_code == 404
        assert missing.json()["code"] == "task_not_exist"


async def test_newapi_takes_only_its_bearer_key() -> None:
    async for client in open_client(FakeKlingConfig(profile="newapi", api_key="sk-right")):
        for authorization in ("", "Bearer test-key"):
            refused = await client.post(
                NEWAPI, json=gateway_body(), headers={"Authorization": authorization}
            )
            assert refused.status_code == 401
            assert refused.json()["code"] == "invalid_api_key"
        right = await client.post(
            NEWAPI, json=gateway_body(), headers={"Authorization": "Bearer sk-right"}
        )
        assert right.status_code == 200


@pytest.mark.parametrize(
    ("code", "status", "word"),
    [(1303, 429, "rate_limit_exceeded"), (5001, 503, "upstream_error"), (1301, 400, "task_failed")],
)
async def test_newapi_refusals(
    newapi: httpx.AsyncClient, code: int, status: int, word: str
) -> None:
    response = await newapi.post(NEWAPI, json=gateway_body(f"[sim:reject={code}]"))
    assert (response.status_code, response.json()["code"]) == (status, word)


# --- apimodels -----------------------------------------------------------------------------------


async def test_apimodels_create_and_query(apimodels: httpx.AsyncClient) -> None:
    response = await apimodels.post(APIMODELS, json=gateway_body(model="kling-video-o1"))
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["code"] == 200 and created["msg"] == "success"
    task_id = created["data"]["taskId"]
    assert created["data"] == {
        "taskId": task_id,
        "state": "pending",
        "model": "kling-video/kling-video-o1",
    }
    assert task_id.startswith("cl") and len(task_id) == 25
    data = await poll(apimodels, f"{APIMODELS}?task_id={task_id}", {"completed"}, "state")
    assert data["completeTime"] >= data["createTime"]
    [url] = data["resultUrls"]
    assert (await apimodels.head(url)).status_code == 200


async def test_apimodels_failure(apimodels: httpx.AsyncClient) -> None:
    created = (await apimodels.post(APIMODELS, json=gateway_body("[sim:fail=Nope]"))).json()
    url = f"{APIMODELS}?task_id={created['data']['taskId']}"
    data = await poll(apimodels, url, {"failed"}, "state")
    assert data["failMsg"] == "Nope" and "resultUrls" not in data


@pytest.mark.parametrize(
    ("path", "status"),
    [(f"{APIMODELS}?task_id=clnothing", 404), (APIMODELS, 400)],
)
async def test_apimodels_query_errors(apimodels: httpx.AsyncClient, path: str, status: int) -> None:
    response = await apimodels.get(path)
    assert response.status_code == status
    assert response.json()["code"] == status and response.json()["data"] is None


@pytest.mark.parametrize(("code", "status"), [(1102, 402), (1302, 429), (5000, 500), (1201, 400)])
async def test_apimodels_refusals(apimodels: httpx.AsyncClient, code: int, status: int) -> None:
    response = await apimodels.post(APIMODELS, json=gateway_body(f"[sim:reject={code}]"))
    assert response.status_code == status and response.json()["code"] == status


async def test_apimodels_needs_a_bearer(apimodels: httpx.AsyncClient) -> None:
    response = await apimodels.post(APIMODELS, json=gateway_body(), headers={"Authorization": ""})
    assert response.status_code == 401 and response.json()["code"] == 401


@pytest.mark.parametrize("directive", ["[sim:reorder]", "[sim:early]", "[sim:badsig]"])
async def test_apimodels_refuses_directives_without_meaning(
    apimodels: httpx.AsyncClient, directive: str
) -> None:
    response = await apimodels.post(APIMODELS, json=gateway_body(f"a cat {directive}"))
    assert response.status_code == 400
    assert "has no meaning for the apimodels profile" in response.json()["msg"]


@pytest.mark.parametrize("directive", ["[sim:duplicate]", "[sim:drop]", "[sim:unsigned]"])
async def test_apimodels_takes_the_directives_that_apply(
    apimodels: httpx.AsyncClient, directive: str
) -> None:
    response = await apimodels.post(APIMODELS, json=gateway_body(f"a cat {directive}"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"profile": "apimodels", "webhook_secret": "whsec_" + "QUJD" * 8},
        {"profile": "kling", "own_task_ids": True},
        {"profile": "apimodels", "own_task_ids": True},
        {"profile": "newapi", "callback_retry_delay": 0},
    ],
)
def test_config_refuses_what_a_profile_cannot_do(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FakeKlingConfig(**kwargs)


def test_newapi_status_words_are_ones_omnihook_reads_as_the_same_state() -> None:
    ours = {
        TaskStatus.SUBMITTED: ProviderStatus.SUBMITTED,
        TaskStatus.PROCESSING: ProviderStatus.PROCESSING,
        TaskStatus.SUCCEED: ProviderStatus.SUCCEEDED,
        TaskStatus.FAILED: ProviderStatus.FAILED,
    }
    assert STATUS_WORDS[TaskStatus.SUBMITTED][0] == "NOT_START"  # new-api's word, not Kling's
    assert {status: normalise_status(word) for status, (word, _) in STATUS_WORDS.items()} == ours
