"""The gateway clients (kling-api.md §6) against scripted answers: new-api and apimodels."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.bootstrap import open_services
from service.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnreachable,
)
from service.kling.auth import ApiKeyAuth
from service.kling.client import HttpProviderClient, is_busy
from service.kling.gateways import ApiModelsClient, NewApiClient, provider_client
from service.kling.gateways.kling import KlingClient
from service.kling.state import ProviderStatus
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from tests.kling.scripted import API_KEY, NO_JITTER, Script, Sleeps, json_answer, lost

EZMODEL = "https://api.ezmodel.cloud/kling"
APIMODELS = "https://apimodels.app"
BODY = {"model_name": "kling-v3-omni", "prompt": "a fox", "external_task_id": "job-0001"}

KLING_TASK = {
    "task_id": "871604988408655901",
    "task_status": "succeed",
    "task_status_msg": "",
    "task_info": {"external_task_id": "job-0001"},
    "final_unit_deduction": "4",
    "created_at": 1775835341656,
    "updated_at": 1775835410960,
    "task_result": {"videos": [{"id": "v1", "url": "https://cdn.test/v1.mp4", "duration": "5"}]},
}
KLING_ANSWER = {"code": 0, "message": "SUCCEED", "request_id": "r", "data": KLING_TASK}

Make = Callable[..., HttpProviderClient]


@pytest.fixture
def client(http: Callable[[Script], httpx.AsyncClient], sleeps: Sleeps) -> Make:
    def make(kind: type[HttpProviderClient], script: Script, base: str) -> HttpProviderClient:
        return kind(http(script), base, auth=ApiKeyAuth(API_KEY), retry=NO_JITTER, sleep=sleeps)

    return make


def sent(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


# --- new-api ---------------------------------------------------------------------------------


def video_object(task_id: str) -> httpx.Response:
    # seed 001: the OpenAI-compatible create answer, created_at in seconds, no envelope
    return json_answer(
        200,
        {
            "id": task_id,
            "task_id": task_id,
            "object": "video",
            "model": "kling-v3-omni",
            "created_at": 1737367800,
        },
    )


def wrapped(task_id: str, status: str, inner: dict[str, Any] | None) -> httpx.Response:
    data = {"task_id": task_id, "status": status, "progress": "100%", "data": inner}
    return json_answer(200, {"code": "success", "message": "", "data": data})


async def test_newapi_create_sends_model_and_reads_the_video_object(client: Make) -> None:
    script = Script(video_object("842250903629086785"))
    gateway = client(NewApiClient, script, EZMODEL)
    state = await gateway.create_task(BODY)
    assert (state.task_id, state.status) == ("842250903629086785", ProviderStatus.SUBMITTED)
    assert state.created_at_ms == 1737367800_000
    [request] = script.requests
    assert str(request.url) == f"{EZMODEL}/v1/videos/omni-video"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent(request) == {
        "model": "kling-v3-omni",
        "prompt": "a fox",
        "external_task_id": "job-0001",
    }
    assert gateway.model_field == "model"


async def test_newapi_keeps_its_own_task_id_the_one_its_query_takes(client: Make) -> None:
    script = Script(video_object("task_9Hq2cVx"), wrapped("task_9Hq2cVx", "SUCCESS", KLING_ANSWER))
    gateway = client(NewApiClient, script, EZMODEL)
    created = await gateway.create_task(BODY)
    queried = await gateway.query_task(created.task_id)
    assert created.task_id == "task_9Hq2cVx"
    assert script.requests[1].url.path == "/kling/v1/videos/omni-video/task_9Hq2cVx"
    assert queried is not None and queried.task_id == "task_9Hq2cVx"  # not Kling's inner id
    assert queried.status is ProviderStatus.SUCCEEDED
    assert (queried.external_task_id, queried.cost) == ("job-0001", "4")
    assert [video.url for video in queried.videos] == ["https://cdn.test/v1.mp4"]


async def test_newapi_wrapper_alone_while_kling_has_not_answered(client: Make) -> None:
    gateway = client(NewApiClient, Script(wrapped("task_1", "SUBMITTED", None)), EZMODEL)
    state = await gateway.query_task("task_1")
    assert state is not None and (state.task_id, state.status) == (
        "task_1",
        ProviderStatus.SUBMITTED,
    )


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("NOT_START", ProviderStatus.SUBMITTED),
        ("QUEUED", ProviderStatus.SUBMITTED),
        ("IN_PROGRESS", ProviderStatus.PROCESSING),
    ],
)
async def test_newapi_extra_statuses_of_the_wrapper_are_read(
    client: Make, word: str, expected: ProviderStatus
) -> None:
    gateway = client(NewApiClient, Script(wrapped("task_1", word, None)), EZMODEL)
    state = await gateway.query_task("task_1")
    assert state is not None and (state.task_id, state.status) == ("task_1", expected)


@pytest.mark.parametrize("inner", [None, KLING_ANSWER])
async def test_newapi_unknown_status_is_no_news_never_a_failure(
    client: Make, inner: dict[str, Any] | None
) -> None:
    script = Script(wrapped("task_1", "UNKNOWN", inner))
    gateway = client(NewApiClient, script, EZMODEL)
    # "cannot tell now": the caller leaves the task as it is and asks again later
    with pytest.raises(ProviderUnreachable, match="UNKNOWN"):
        await gateway.query_task("task_1")
    assert len(script.requests) == 1  # not hammered: the next look-up is reconciliation's


def word_error(status: int, code: str, message: str) -> httpx.Response:
    return json_answer(status, {"code": code, "message": message, "data": None})


async def test_newapi_unknown_task_is_none(client: Make) -> None:
    answer = word_error(404, "task_not_exist", "task_not_exist")
    assert await client(NewApiClient, Script(answer), EZMODEL).query_task("task_x") is None


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        (word_error(401, "invalid_api_key", "invalid token"), ProviderAuthError, 401),
        (json_answer(401, {"error": {"message": "bad key", "type": "x"}}), ProviderAuthError, 401),
        (word_error(400, "task_failed", "Invalid parameter duration"), ProviderRejected, 400),
    ],
)
async def test_newapi_refusals_are_read_by_http_status(
    client: Make, answer: httpx.Response, error: type[Exception], code: int
) -> None:
    script = Script(answer)
    with pytest.raises(error) as caught:
        await client(NewApiClient, script, EZMODEL).create_task(BODY)
    assert getattr(caught.value, "code", None) == code and len(script.requests) == 1


async def test_newapi_refusal_message_is_kept(client: Make) -> None:
    script = Script(word_error(400, "task_failed", "Invalid parameter duration"))
    with pytest.raises(ProviderRejected, match="Invalid parameter duration"):
        await client(NewApiClient, script, EZMODEL).create_task(BODY)


async def test_a_credentials_refusal_never_quotes_the_gateway(client: Make) -> None:
    script = Script(word_error(401, "invalid_api_key", f"invalid token {API_KEY}"))
    with pytest.raises(ProviderAuthError) as caught:
        await client(NewApiClient, script, EZMODEL).create_task(BODY)
    assert API_KEY not in str(caught.value) and str(caught.value).endswith("HTTP 401")


async def test_newapi_rate_limit_on_a_create_is_raised_for_the_queue(
    client: Make, sleeps: Sleeps
) -> None:
    # The gateway's own 429 is "too many": the task waits in omnihook's queue instead.
    script = Script(word_error(429, "rate_limit", "status_code=429"), video_object("t1"))
    with pytest.raises(ProviderRetryable) as caught:
        await client(NewApiClient, script, EZMODEL).create_task(BODY)
    assert is_busy(caught.value)
    assert script.methods() == ["POST"] and sleeps == []


@pytest.mark.parametrize(
    "loss",
    [lost, word_error(502, "bad_gateway", "upstream"), json_answer(200, {"id": None})],
    ids=["timeout", "5xx", "no id"],
)
async def test_newapi_lost_create_answer_is_never_sent_again(client: Make, loss: Any) -> None:
    # Whether the gateway can find a task by our external id is undocumented: never guess.
    script = Script(loss)
    with pytest.raises(ProviderUnreachable, match="cannot look tasks up by external_task_id"):
        await client(NewApiClient, script, EZMODEL).create_task(BODY)
    assert script.methods() == ["POST"]


async def test_newapi_find_task_cannot_tell(client: Make) -> None:
    with pytest.raises(ProviderUnreachable, match="unknown"):
        await client(NewApiClient, Script(), EZMODEL).find_task("job-0001")


# --- apimodels ---------------------------------------------------------------------------------


def envelope(data: dict[str, Any] | None, code: int = 200, msg: str = "success") -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


async def test_apimodels_create_and_query(client: Make) -> None:
    created = envelope({"taskId": "clx1", "state": "pending", "model": "kling-video/kling-v3-omni"})
    finished = envelope(
        {
            "taskId": "clx1",
            "state": "completed",
            "model": "kling-video/kling-v3-omni",
            "resultUrls": ["https://cdn.test/a.mp4"],
            "createTime": 1705123450000,
            "completeTime": 1705123500000,
        }
    )
    script = Script(json_answer(200, created), json_answer(200, finished))
    gateway = client(ApiModelsClient, script, APIMODELS)
    state = await gateway.create_task(BODY)
    assert (state.task_id, state.status) == ("clx1", ProviderStatus.SUBMITTED)
    queried = await gateway.query_task("clx1")
    assert queried is not None and queried.status is ProviderStatus.SUCCEEDED
    assert [video.url for video in queried.videos] == ["https://cdn.test/a.mp4"]
    create, query = script.requests
    assert (create.method, str(create.url)) == ("POST", f"{APIMODELS}/api/v1/video/generations")
    assert sent(create)["model"] == "kling-v3-omni" and "model_name" not in sent(create)
    assert (query.method, query.url.path, query.url.params["task_id"]) == (
        "GET",
        "/api/v1/video/generations",
        "clx1",
    )


async def test_apimodels_failure_message(client: Make) -> None:
    failed = envelope({"taskId": "clx2", "state": "failed", "failMsg": "Content policy violation"})
    state = await client(ApiModelsClient, Script(json_answer(200, failed)), APIMODELS).query_task(
        "clx2"
    )
    assert state is not None
    assert (state.status, state.status_message) == (
        ProviderStatus.FAILED,
        "Content policy violation",
    )


async def test_apimodels_unknown_task_is_none(client: Make) -> None:
    answer = json_answer(404, envelope(None, 404, "Not Found - Task ID not found"))
    assert await client(ApiModelsClient, Script(answer), APIMODELS).query_task("clx9") is None


@pytest.mark.parametrize(
    ("code", "error"),
    [(401, ProviderAuthError), (402, ProviderRejected), (400, ProviderRejected)],
)
async def test_apimodels_refusals(client: Make, code: int, error: type[Exception]) -> None:
    script = Script(json_answer(code, envelope(None, code, "refused")))
    with pytest.raises(error) as caught:
        await client(ApiModelsClient, script, APIMODELS).create_task(BODY)
    assert getattr(caught.value, "code", None) == code and len(script.requests) == 1


async def test_apimodels_internal_error_on_create_is_an_unknown_outcome(client: Make) -> None:
    script = Script(json_answer(500, envelope(None, 500, "Internal Server Error")))
    with pytest.raises(ProviderUnreachable, match="may or may not exist"):
        await client(ApiModelsClient, script, APIMODELS).create_task(BODY)
    assert script.methods() == ["POST"]


async def test_apimodels_internal_error_on_query_is_retried(client: Make, sleeps: Sleeps) -> None:
    pending = envelope({"taskId": "clx1", "state": "processing"})
    script = Script(json_answer(500, envelope(None, 500, "oops")), json_answer(200, pending))
    state = await client(ApiModelsClient, script, APIMODELS).query_task("clx1")
    assert state is not None and state.status is ProviderStatus.PROCESSING and sleeps == [1]


# --- choosing the client -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "kind", "model_field"),
    [
        ("kling", KlingClient, "model_name"),
        ("newapi", NewApiClient, "model"),
        ("apimodels", ApiModelsClient, "model"),
    ],
)
async def test_services_use_the_configured_provider(
    tmp_path: Path, provider: str, kind: type[HttpProviderClient], model_field: str
) -> None:
    settings = load_settings(
        database_url="memory://", media_dir=tmp_path, kling_api_key="k", provider=provider
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    async with open_services(
        settings, storage=MemoryStorage(), registry=HandlerRegistry(), transport=transport
    ) as services:
        assert type(services.kling) is kind
        assert services.kling.name == provider and services.kling.model_field == model_field


async def test_unknown_provider_is_a_configuration_error() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigurationError, match="OMNIHOOK_PROVIDER='comet'"):
            provider_client("comet", http, EZMODEL, auth=ApiKeyAuth(API_KEY))


async def test_a_body_stored_under_another_model_field_is_renamed(client: Make) -> None:
    script = Script(video_object("t1"), json_answer(200, KLING_ANSWER))
    await client(NewApiClient, script, EZMODEL).create_task(BODY)
    stored_for_newapi = {"model": "kling-video-o1", "prompt": "a fox"}
    await client(KlingClient, script, EZMODEL).create_task(stored_for_newapi)
    first, second = (sent(request) for request in script.requests)
    assert first["model"] == "kling-v3-omni" and "model_name" not in first
    assert second == {"model_name": "kling-video-o1", "prompt": "a fox"}
