from __future__ import annotations

import json
import socket

import httpx
import pytest

from service.cli.client import ApiError, OmnihookClient, ServiceUnreachable

from .fake_api import FakeApi, make_task


def client_of(fake_api: FakeApi, token: str | None = None) -> OmnihookClient:
    return OmnihookClient("http://omnihook.test/", token=token, transport=fake_api.transport)


async def test_submit_posts_the_body_and_returns_the_task(fake_api: FakeApi) -> None:
    async with client_of(fake_api, token="s3cret") as api:
        task, answered = await api.submit({"prompt": "a fox", "external_task_id": "job-1"})
    assert answered is True
    assert task["external_task_id"] == "job-1"
    request = fake_api.requests[0]
    assert request.url == "http://omnihook.test/v1/tasks"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert json.loads(request.content)["prompt"] == "a fox"


async def test_a_202_means_the_outcome_is_pending(fake_api: FakeApi) -> None:
    fake_api.submit_answer = (202, make_task(status="pending"))
    async with client_of(fake_api) as api:
        task, answered = await api.submit({"prompt": "a fox"})
    assert (task["status"], answered) == ("pending", False)
    assert "authorization" not in fake_api.requests[0].headers


async def test_invalid_request_lists_every_problem(fake_api: FakeApi) -> None:
    problems = [
        {"field": "duration", "message": "must be 3..15"},
        {"field": "image_list[0].image_url", "message": "required"},
    ]
    fake_api.submit_answer = (
        422,
        {"error": "invalid_request", "message": "2 problems", "problems": problems},
    )
    async with client_of(fake_api) as api:
        with pytest.raises(ApiError) as caught:
            await api.submit({})
    error = caught.value
    assert (error.status_code, error.code) == (422, "invalid_request")
    assert error.details() == ["duration: must be 3..15", "image_list[0].image_url: required"]
    assert str(error) == "invalid_request (HTTP 422): 2 problems"


async def test_provider_error_names_the_providers_code(fake_api: FakeApi) -> None:
    fake_api.submit_answer = (
        502,
        {
            "error": "provider_error",
            "message": "the provider refused the task",
            "provider_code": 1301,
            "provider_message": "content security",
        },
    )
    async with client_of(fake_api) as api:
        with pytest.raises(ApiError, match=r"provider code 1301: content security"):
            await api.submit({})


async def test_an_error_without_json_still_reads_well() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(503, text="upstream down"))
    async with OmnihookClient("http://x.test", transport=transport) as api:
        with pytest.raises(ApiError) as caught:
            await api.get_task("t")
    assert str(caught.value) == "service_unavailable (HTTP 503): upstream down"


async def test_unauthorized_says_which_variable_to_set() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(401, json={"error": "unauthorized", "message": "no token"})
    )
    async with OmnihookClient("http://x.test", transport=transport) as api:
        with pytest.raises(ApiError, match="OMNIHOOK_API_TOKEN"):
            await api.list_tasks()


async def test_ids_stay_one_path_segment(fake_api: FakeApi) -> None:
    fake_api.add(make_task("t1", external_task_id="batch/7 a"))
    async with client_of(fake_api) as api:
        task = await api.get_task("batch/7 a")
    assert task["id"] == "t1"
    assert fake_api.requests[0].url.raw_path == b"/v1/tasks/batch%2F7%20a"


async def test_list_sends_only_the_given_filters(fake_api: FakeApi) -> None:
    async with client_of(fake_api) as api:
        await api.list_tasks(status="failed", limit=5)
    assert dict(fake_api.requests[0].url.params) == {"status": "failed", "limit": "5"}


async def test_video_chunks_stream_the_file(fake_api: FakeApi) -> None:
    fake_api.files[("t1", 0)] = b"\x00mp4" * 1000
    async with client_of(fake_api) as api:
        data = b"".join([chunk async for chunk in api.video_chunks("t1", 0)])
        with pytest.raises(ApiError, match="not_found"):
            [chunk async for chunk in api.video_chunks("t1", 1)]
    assert data == b"\x00mp4" * 1000


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_service_is_named() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with OmnihookClient(url) as api:
        with pytest.raises(ServiceUnreachable) as caught:
            await api.get_task("t")
    assert url in str(caught.value)
    assert "OMNIHOOK_URL" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_a_timeout_is_unreachable_too() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with OmnihookClient("http://x.test", transport=httpx.MockTransport(slow)) as api:
        with pytest.raises(ServiceUnreachable, match="timed out"):
            await api.get_task("t")


async def test_problems_are_not_repeated_in_the_headline(fake_api: FakeApi) -> None:
    problems = [{"field": "duration", "message": "must be 3..15"}]
    message = "invalid request: duration: must be 3..15"
    fake_api.submit_answer = (
        422,
        {"error": "invalid_request", "message": message, "problems": problems},
    )
    async with client_of(fake_api) as api:
        with pytest.raises(ApiError) as caught:
            await api.submit({})
    assert str(caught.value) == "invalid_request (HTTP 422): 1 problem(s) in the request"
    assert caught.value.details() == ["duration: must be 3..15"]
