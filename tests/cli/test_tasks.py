from __future__ import annotations

import json

from .conftest import Invoke
from .fake_api import FakeApi, make_event, make_run, make_task, make_video


def test_tasks_lists_a_table(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.add(make_task("task_a", "succeeded", videos=[make_video(0)]))
    fake_api.add(make_task("task_b", "failed"))
    result = invoke("tasks")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("task_a" in line and "succeeded" in line and "1/1 stored" in line for line in lines)
    assert any("task_b" in line and "failed" in line for line in lines)


def test_tasks_passes_filters_and_hints_at_the_next_page(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.page = {"tasks": [make_task("task_a", "failed")], "next_cursor": "c2"}
    result = invoke("tasks", "--status", "failed", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert dict(fake_api.requests[0].url.params) == {"status": "failed", "limit": "1"}
    assert "omnihook tasks --cursor c2" in result.stdout


def test_tasks_says_when_there_are_none(invoke: Invoke) -> None:
    result = invoke("tasks", "--status", "pending")
    assert result.stdout.strip() == "no tasks with status pending"


def test_tasks_rejects_an_unknown_status(invoke: Invoke, fake_api: FakeApi) -> None:
    result = invoke("tasks", "--status", "done")
    assert result.exit_code == 2
    assert fake_api.requests == []


def add_finished_task(fake_api: FakeApi) -> None:
    events = [
        make_event("task.submitted", 1),
        make_event("task.processing", 2),
        make_event("task.succeeded", 3),
        make_event("video.downloaded", 4, video={"index": 0, "size": 2048}),
        make_event("task.completed", 5),
    ]
    runs = [make_run(event["id"], event["type"]) for event in events]
    runs.append(
        make_run(
            "evt_5",
            "task.completed",
            handler="demo_handlers:demo_flaky_on_completed",
            attempts=2,
            last_error="RuntimeError: failing the first attempt on purpose",
        )
    )
    task = make_task("task_1", "succeeded", videos=[make_video(0)], cost="3", handler_runs=runs)
    fake_api.add(task, events=events)


def test_show_prints_the_task_videos_timeline_and_handler_runs(
    invoke: Invoke, fake_api: FakeApi
) -> None:
    add_finished_task(fake_api)
    result = invoke("tasks", "show", "ext-task_1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        "task_1",
        "871604988408655901",
        "/srv/media/task_1/0.mp4",
        "abababababab",
        "2.0 KiB",
        "timeline",
        "task.processing",
        "video 0: 2.0 KiB",
        "handler runs",
        "demo_handlers:demo_flaky_on_completed",
        "failing the first attempt on purpose",
    ):
        assert expected in out, expected
    # by external id first, then the events by the task's own id
    paths = [request.url.path for request in fake_api.requests]
    assert paths == ["/v1/tasks/ext-task_1", "/v1/tasks/task_1/events"]


def test_show_json(invoke: Invoke, fake_api: FakeApi) -> None:
    add_finished_task(fake_api)
    result = invoke("tasks", "show", "task_1", "--output", "json")
    document = json.loads(result.stdout)
    assert document["events"][0]["type"] == "task.submitted"
    assert len(document["handler_runs"]) == 6


def test_show_a_task_without_news(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.add(make_task("task_1", "pending"))
    result = invoke("tasks", "show", "task_1")
    assert result.exit_code == 0, result.output
    assert "no videos yet" in result.stdout
    assert "no events yet" in result.stdout


def test_show_an_unknown_task(invoke: Invoke) -> None:
    result = invoke("tasks", "show", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: not_found (HTTP 404): no task nope"
    assert result.stdout == ""


def test_redownload_queues_every_failed_video_by_default(invoke: Invoke, fake_api: FakeApi) -> None:
    videos = [make_video(0, "failed", error="HTTP 410"), make_video(1), make_video(2, "failed")]
    fake_api.add(make_task("task_a", "succeeded", videos=videos))
    result = invoke("tasks", "redownload", "ext-task_a")  # an external id names it too
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "video 0: queued for download again",
        "video 2: queued for download again",
    ]
    assert result.stderr.strip() == "video 1: not queued: video 1 is downloaded"
    posted = [r.url.path for r in fake_api.requests if r.method == "POST"]
    assert posted == [f"/v1/tasks/task_a/videos/{n}/download" for n in (0, 1, 2)]
    assert [v["download_status"] for v in fake_api.tasks["task_a"]["videos"]] == [
        "pending",
        "downloaded",
        "pending",
    ]


def test_redownload_of_named_videos_fails_when_one_is_refused(
    invoke: Invoke, fake_api: FakeApi
) -> None:
    videos = [make_video(0, "failed"), make_video(1, "failed")]
    fake_api.add(make_task("task_a", "succeeded", videos=videos))
    result = invoke("tasks", "redownload", "task_a", "1", "5")
    assert result.exit_code == 1
    assert result.stdout == "video 1: queued for download again\n"
    assert "video 5: not queued: task task_a has no video 5" in result.stderr
    assert "error: some videos were not queued" in result.stderr
    assert fake_api.tasks["task_a"]["videos"][0]["download_status"] == "failed"  # not named


def test_redownload_with_nothing_to_fetch_fails(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.add(make_task("task_a", "succeeded", videos=[make_video(0)]))
    result = invoke("tasks", "redownload", "task_a")
    assert result.exit_code == 1
    assert "error: nothing was queued" in result.stderr


def test_redownload_of_an_unknown_task(invoke: Invoke) -> None:
    result = invoke("tasks", "redownload", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: not_found (HTTP 404): no task nope"
