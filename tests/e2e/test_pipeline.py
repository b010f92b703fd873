"""The whole pipeline over HTTP: submit, notifications, downloads, events, handler runs."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

SUCCESS_EVENTS = [
    "task.submitted",
    "task.processing",
    "task.succeeded",
    "video.downloaded",
    "task.completed",
]


async def provider_video_bytes(pipeline: Pipeline, provider_task_id: str) -> list[bytes]:
    async with httpx.AsyncClient(base_url=pipeline.fake_url) as fake:
        answer = await fake.get(
            f"/v1/videos/omni-video/{provider_task_id}",
            headers={"Authorization": "Bearer e2e-key"},
        )
        videos = answer.json()["data"]["task_result"]["videos"]
        return [(await fake.get(video["url"])).content for video in videos]


async def simulated_tasks(pipeline: Pipeline) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=pipeline.fake_url) as fake:
        tasks: list[dict[str, Any]] = (await fake.get("/_sim/tasks")).json()["tasks"]
        return tasks


async def test_success_stores_the_provider_video_and_announces_each_event_once(
    pipeline: Pipeline,
) -> None:
    answer = await pipeline.submit(
        prompt="a red fox in snow", external_task_id="job-0001", metadata={"order": 42}
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["status"] == "submitted"
    assert created["external_task_id"] == "job-0001"
    assert "callback_url" not in created["request"]

    task = await pipeline.wait_finished(created["id"])
    assert task["status"] == "succeeded"
    assert task["cost"] is not None
    [video] = task["videos"]
    assert video["download_status"] == "downloaded"
    stored = Path(video["path"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == video["sha256"]
    assert len(stored) == video["size"]
    [original] = await provider_video_bytes(pipeline, task["provider_task_id"])
    assert stored == original

    await pipeline.wait_handler_runs(task["id"], count=len(SUCCESS_EVENTS) + 2)
    assert await pipeline.events(task["id"]) == SUCCESS_EVENTS
    events = (await pipeline.api.get(f"/v1/tasks/{task['id']}/events")).json()["events"]
    assert all(e["data"]["task"]["metadata"] == {"order": 42} for e in events)
    downloaded = events[3]["data"]["video"]
    assert downloaded["sha256"] == video["sha256"] and downloaded["path"] == video["path"]

    # by external id too, and the file with Range
    by_external = await pipeline.api.get("/v1/tasks/job-0001")
    assert by_external.json()["id"] == task["id"]
    ranged = await pipeline.api.get(
        f"/v1/tasks/{task['id']}/videos/0", headers={"Range": "bytes=0-99"}
    )
    assert ranged.status_code == 206
    assert ranged.content == stored[:100]
    assert ranged.headers["content-type"] == "video/mp4"


async def test_provider_failure_is_announced_with_its_reason(pipeline: Pipeline) -> None:
    answer = await pipeline.submit(prompt="a broken one [sim:fail]")
    assert answer.status_code == 201, answer.text
    task = await pipeline.wait_finished(answer.json()["id"])
    assert task["status"] == "failed"
    assert task["status_message"] == "Image pixel is invalid"
    assert task["videos"] == []
    assert await pipeline.events(task["id"]) == ["task.submitted", "task.processing", "task.failed"]


@pytest.mark.parametrize(
    "directive", ["[sim:duplicate]", "[sim:reorder]", "[sim:duplicate] [sim:reorder]"]
)
async def test_duplicated_and_reordered_notifications_change_nothing_twice(
    pipeline: Pipeline, directive: str
) -> None:
    answer = await pipeline.submit(prompt=f"waves on a beach {directive}")
    task = await pipeline.wait_finished(answer.json()["id"])
    assert task["status"] == "succeeded"
    assert [v["download_status"] for v in task["videos"]] == ["downloaded"]
    await pipeline.wait_handler_runs(task["id"], count=len(SUCCESS_EVENTS) + 2)
    assert await pipeline.events(task["id"]) == SUCCESS_EVENTS
    notifications = (await pipeline.api.get(f"/v1/tasks/{task['id']}/notifications")).json()
    outcomes = [n["outcome"] for n in notifications["notifications"]]
    assert len(outcomes) >= 2 and all(outcomes)
    assert any(o.startswith("no change") for o in outcomes)


async def test_notification_before_the_create_answer_is_matched(pipeline: Pipeline) -> None:
    answer = await pipeline.submit(prompt="a lighthouse at night [sim:early]")
    assert answer.status_code == 201, answer.text
    task = await pipeline.wait_finished(answer.json()["id"])
    assert task["status"] == "succeeded"
    [simulated] = [
        t for t in await simulated_tasks(pipeline) if t["external_task_id"] == task["id"]
    ]
    first = simulated["callbacks"][0]
    # sent (and answered) before the create response left the provider, and matched: 200
    assert first["state"] == "submitted" and first["status_code"] == 200
    assert first["sent_at"] <= simulated["created_at"] + 1000
    assert await pipeline.events(task["id"]) == SUCCESS_EVENTS


async def test_lost_notifications_are_made_up_for_by_reconciliation(pipeline: Pipeline) -> None:
    answer = await pipeline.submit(prompt="a quiet forest [sim:drop]")
    task = await pipeline.wait_finished(answer.json()["id"])
    assert task["status"] == "succeeded"
    assert [v["download_status"] for v in task["videos"]] == ["downloaded"]
    notifications = await pipeline.api.get(f"/v1/tasks/{task['id']}/notifications")
    assert notifications.json()["notifications"] == []
    assert await pipeline.events(task["id"]) == SUCCESS_EVENTS


async def test_a_wrong_token_is_refused_and_nothing_is_stored(pipeline: Pipeline) -> None:
    body = {"task_id": "1", "task_status": "succeed"}
    answer = await pipeline.api.post("/callbacks/kling/not-a-token", json=body)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
    tasks = (await pipeline.api.get("/v1/tasks")).json()["tasks"]
    assert tasks == []


async def test_a_handler_that_fails_once_is_retried_and_others_run_once(
    pipeline: Pipeline,
) -> None:
    answer = await pipeline.submit(prompt="city lights timelapse")
    task = await pipeline.wait_finished(answer.json()["id"])
    runs = await pipeline.wait_handler_runs(task["id"], count=len(SUCCESS_EVENTS) + 2)
    flaky = [r for r in runs if r["handler"].endswith(":flaky")]
    assert len(flaky) == 1
    assert flaky[0]["status"] == "succeeded" and flaky[0]["attempts"] == 2
    assert "first attempt fails on purpose" in (flaky[0]["last_error"] or "")
    seen = [json.loads(line) for line in pipeline.handler_log.read_text().splitlines()]
    counts = Counter(entry["type"] for entry in seen if entry["task"] == task["id"])
    assert counts == Counter(SUCCESS_EVENTS)  # the "*" handler saw each event exactly once
    sidecar = Path(task["videos"][0]["path"] + ".json")
    assert json.loads(sidecar.read_text())["sha256"] == task["videos"][0]["sha256"]


async def test_invalid_submissions_never_reach_the_provider(pipeline: Pipeline) -> None:
    answer = await pipeline.submit(model_name="kling-video-o1", duration="7", prompt="x" * 3000)
    assert answer.status_code == 422
    fields = {p["field"] for p in answer.json()["problems"]}
    assert {"prompt", "duration"} <= fields
    assert await simulated_tasks(pipeline) == []
    assert (await pipeline.api.get("/v1/tasks")).json()["tasks"] == []


async def test_duplicate_external_id_is_a_conflict(pipeline: Pipeline) -> None:
    first = await pipeline.submit(prompt="one", external_task_id="same")
    assert first.status_code == 201
    second = await pipeline.submit(prompt="two", external_task_id="same")
    assert second.status_code == 409
