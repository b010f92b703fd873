"""The official API shape through ASGITransport: create, query, list, errors, limits."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from service.fake_kling import FakeKlingConfig, create_fake_kling_app

from .helpers import BASE, CREATE, body, wait_final


def assert_envelope(payload: dict[str, object]) -> None:
    assert payload["code"] == 0
    assert payload["message"] == "SUCCEED"
    uuid.UUID(str(payload["request_id"]))


def assert_error(response: httpx.Response, status: int, code: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"code", "message", "request_id"}
    assert payload["code"] == code
    assert payload["message"]
    return dict(payload)


async def test_create_returns_submitted_task(client: httpx.AsyncClient) -> None:
    response = await client.post(CREATE, json=body(external_task_id="job-0001"))
    assert response.status_code == 200
    payload = response.json()
    assert_envelope(payload)
    data = payload["data"]
    assert set(data) == {"task_id", "task_status", "task_info", "created_at", "updated_at"}
    assert data["task_status"] == "submitted"
    assert data["task_id"].isdigit() and len(data["task_id"]) == 18
    assert data["task_info"] == {"external_task_id": "job-0001"}
    assert isinstance(data["created_at"], int) and data["created_at"] > 1_700_000_000_000
    assert data["updated_at"] == data["created_at"]


async def test_create_without_external_id_has_empty_task_info(client: httpx.AsyncClient) -> None:
    data = (await client.post(CREATE, json=body())).json()["data"]
    assert data["task_info"] == {}


@pytest.mark.parametrize("prefix", ["", "/kling"])
async def test_query_by_task_id_and_external_id(client: httpx.AsyncClient, prefix: str) -> None:
    created = (await client.post(prefix + CREATE, json=body(external_task_id="ext-1"))).json()
    task_id = created["data"]["task_id"]
    for ref in (task_id, "ext-1"):
        response = await client.get(f"{prefix}{CREATE}/{ref}")
        assert response.status_code == 200
        assert_envelope(response.json())
        assert response.json()["data"]["task_id"] == task_id


async def test_query_follows_progression_to_succeed(client: httpx.AsyncClient) -> None:
    task_id = (await client.post(CREATE, json=body(mode="std"))).json()["data"]["task_id"]
    seen: set[str] = set()

    async def status() -> dict[str, object]:
        data: dict[str, object] = (await client.get(f"{CREATE}/{task_id}")).json()["data"]
        seen.add(str(data["task_status"]))
        return data

    data = await status()
    for _ in range(300):
        if data["task_status"] == "succeed":
            break
        await asyncio.sleep(0.01)
        data = await status()
    assert "submitted" in seen or "processing" in seen
    assert data["task_status_msg"] == ""
    assert isinstance(data["final_unit_deduction"], str)
    float(data["final_unit_deduction"])
    videos = data["task_result"]["videos"]  # type: ignore[index]
    assert len(videos) == 1
    video = videos[0]
    assert video["duration"] == "3.0"
    assert video["id"].isdigit()
    assert video["url"].startswith(f"{BASE}/media/{video['id']}.mp4")


async def test_failed_task(client: httpx.AsyncClient) -> None:
    created = await client.post(CREATE, json=body("x [SIM:fail=No luck today]"))
    task_id = created.json()["data"]["task_id"]
    await wait_final(client, task_id)
    payload = (await client.get(f"{CREATE}/{task_id}")).json()
    assert_envelope(payload)  # a failed task is still code 0
    assert payload["data"]["task_status"] == "failed"
    assert payload["data"]["task_status_msg"] == "No luck today"
    assert payload["data"]["task_result"] == {}


async def test_default_failure_message_and_many_videos(client: httpx.AsyncClient) -> None:
    failed = (await client.post(CREATE, json=body("[sim:fail]"))).json()["data"]["task_id"]
    many = (await client.post(CREATE, json=body("[sim:videos=3]"))).json()["data"]["task_id"]
    assert (await wait_final(client, failed))["task_status_msg"] == "Image pixel is invalid"
    videos = (await wait_final(client, many))["task_result"]["videos"]
    assert len({video["id"] for video in videos}) == 3


async def test_multi_shot_directives_come_from_shot_prompts(client: httpx.AsyncClient) -> None:
    request = {
        "model_name": "kling-v3-omni",
        "multi_shot": True,
        "shot_type": "customize",
        "duration": "6",
        "multi_prompt": [
            {"index": 1, "prompt": "a cat", "duration": "3"},
            {"index": 2, "prompt": "a dog [sim:fail=shot two]", "duration": "3"},
        ],
    }
    task_id = (await client.post(CREATE, json=request)).json()["data"]["task_id"]
    assert (await wait_final(client, task_id))["task_status_msg"] == "shot two"


async def test_list_is_newest_first_and_paginated(client: httpx.AsyncClient) -> None:
    ids = [(await client.post(CREATE, json=body())).json()["data"]["task_id"] for _ in range(3)]
    payload = (await client.get(CREATE, params={"pageNum": 1, "pageSize": 2})).json()
    assert_envelope(payload)
    assert [task["task_id"] for task in payload["data"]] == [ids[2], ids[1]]
    page2 = (await client.get(CREATE, params={"pageNum": 2, "pageSize": 2})).json()["data"]
    assert [task["task_id"] for task in page2] == [ids[0]]
    everything = (await client.get("/kling" + CREATE)).json()["data"]
    assert len(everything) == 3


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"pageNum": 0}, "pageNum"),
        ({"pageNum": 1001}, "pageNum"),
        ({"pageSize": 501}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
    ],
)
async def test_list_validates_ranges(
    client: httpx.AsyncClient, params: dict[str, Any], name: str
) -> None:
    payload = assert_error(await client.get(CREATE, params=params), 400, 1201)
    assert name in str(payload["message"])


async def test_unknown_task_is_404_1203(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"{CREATE}/123456789012345678"), 404, 1203)


@pytest.mark.parametrize(
    ("request_body", "code", "field"),
    [
        ({"model_name": "", "prompt": "a cat"}, 1201, "model_name"),
        ({"model_name": "kling-v9", "prompt": "a cat"}, 1201, "model_name"),
        ({"model_name": "kling-video-o1"}, 1201, "prompt"),
        ({**body(), "callback_url": "ftp://x"}, 1201, "callback_url"),
        (body("x [sim:explode]"), 1201, "prompt"),
        (body("x [sim:videos=0]"), 1201, "prompt"),
        (body(duration="20"), 1201, "duration"),
        ([1, 2], 1200, "body"),
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, request_body: object, code: int, field: str
) -> None:
    payload = assert_error(await client.post(CREATE, json=request_body), 400, code)
    assert field in str(payload["message"])


async def test_invalid_json_is_1200(client: httpx.AsyncClient) -> None:
    assert_error(await client.post(CREATE, content=b"{nope"), 400, 1200)


async def test_duplicate_external_task_id(client: httpx.AsyncClient) -> None:
    assert (await client.post(CREATE, json=body(external_task_id="dup"))).status_code == 200
    payload = assert_error(await client.post(CREATE, json=body(external_task_id="dup")), 400, 1201)
    assert "external_task_id" in str(payload["message"])


@pytest.mark.parametrize(
    ("code", "status"), [(1301, 400), (1102, 429), (1103, 403), (5001, 503), (1303, 429)]
)
async def test_reject_directive(client: httpx.AsyncClient, code: int, status: int) -> None:
    assert_error(await client.post(CREATE, json=body(f"a cat [sim:reject={code}]")), status, code)
    assert (await client.get(CREATE)).json()["data"] == []


async def test_unknown_route_uses_the_envelope(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/videos/text2video/1"), 404, 1202)
    assert_error(await client.delete(CREATE), 404, 1202)  # §4: 1202 is HTTP 404


class TestConcurrency:
    @pytest.fixture
    def config(self) -> FakeKlingConfig:
        return FakeKlingConfig(step_seconds=0.05, max_concurrent=2)

    async def test_over_max_concurrent_is_1303_without_data(
        self, client: httpx.AsyncClient
    ) -> None:
        ids = [(await client.post(CREATE, json=body())).json()["data"]["task_id"] for _ in range(2)]
        response = await client.post(CREATE, json=body())
        payload = assert_error(response, 429, 1303)
        assert payload["message"] == "parallel task over resource pack limit"
        for task_id in ids:
            await wait_final(client, task_id)
        assert (await client.post(CREATE, json=body())).status_code == 200


class TestIntrospection:
    async def test_sim_tasks_lists_state_and_scenario(self, client: httpx.AsyncClient) -> None:
        created = await client.post(CREATE, json=body("[sim:videos=2][sim:duplicate]"))
        task_id = created.json()["data"]["task_id"]
        await wait_final(client, task_id)
        tasks = (await client.get("/_sim/tasks")).json()["tasks"]
        assert len(tasks) == 1
        task = tasks[0]
        assert task["task_id"] == task_id
        assert task["task_status"] == "succeed"
        assert task["scenario"]["videos"] == 2 and task["scenario"]["duplicate"] is True
        assert len(task["videos"]) == 2
        assert task["callbacks"] == []  # no callback_url


async def test_create_needs_a_running_lifespan() -> None:
    app = create_fake_kling_app(FakeKlingConfig())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        response = await client.post(CREATE, json=body(), headers={"Authorization": "Bearer k"})
    assert_error(response, 503, 5001)
