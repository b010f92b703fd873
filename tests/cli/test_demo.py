"""The demo's parts that need no servers: its cases, its judgement, its plugin."""

from __future__ import annotations

import hashlib
import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.cli.client import OmnihookClient
from service.cli.demo_cases import DemoCase, demo_cases
from service.cli.demo_check import Tracked, verify
from service.cli.demo_plugin import seen_event_ids, write_plugin
from service.cli.model import Event, Task
from tests.factories import task_data

from .fake_api import FakeApi, make_event, make_run, make_task, make_video

SUCCESS = DemoCase("text", "text to video", {"prompt": "x"})
FAILURE = DemoCase("fails", "provider fails it", {"prompt": "x [sim:fail]"}, succeeds=False)


def test_the_cases_cover_the_workflows() -> None:
    cases = demo_cases("abc")
    assert [case.name for case in cases] == ["text", "image", "multi", "fails", "robust"]
    assert [case.succeeds for case in cases].count(False) == 1
    external_ids = {case.request["external_task_id"] for case in cases}
    assert len(external_ids) == len(cases)
    assert all("abc" in external_id for external_id in external_ids)
    multi = cases[2].request
    assert sum(int(shot["duration"]) for shot in multi["multi_prompt"]) == int(multi["duration"])
    assert multi["multi_shot"] is True and multi["shot_type"] == "customize"
    assert cases[1].request["image_list"][0]["type"] == "first_frame"
    assert "[sim:fail]" in cases[3].request["prompt"]
    assert "[sim:duplicate]" in cases[4].request["prompt"]
    assert "[sim:reorder]" in cases[4].request["prompt"]


def test_expected_events() -> None:
    assert SUCCESS.expected_events() == {
        "task.queued": (0, 1),  # the simulated account's slots may all be taken
        "task.submitted": (1, 1),
        "task.processing": (1, 1),
        "task.succeeded": (1, 1),
        "video.downloaded": (1, 1),
        "task.completed": (1, 1),
    }
    assert FAILURE.expected_events() == {
        "task.queued": (0, 1),
        "task.submitted": (1, 1),
        "task.processing": (1, 1),
        "task.failed": (1, 1),
    }
    robust = demo_cases("x")[4]
    assert robust.expected_events()["task.processing"] == (0, 1)
    assert robust.expected_events()["video.downloaded"] == (2, 2)


SUCCESS_TYPES = [
    "task.submitted",
    "task.processing",
    "task.succeeded",
    "video.downloaded",
    "task.completed",
]


def timeline(types: list[str]) -> list[Event]:
    return [make_event(kind, number) for number, kind in enumerate(types, start=1)]  # type: ignore[misc]


def runs_for(events: list[Event], **overrides: Any) -> list[dict[str, Any]]:
    runs = [make_run(event["id"], event["type"]) for event in events]
    for event in events:
        if event["type"] == "task.completed":
            runs.append(
                make_run(
                    event["id"],
                    event["type"],
                    **{"handler": "demo_flaky", "attempts": 2, **overrides},
                )
            )
    return runs


def finished(events: list[Event], video: dict[str, Any], **overrides: Any) -> Task:
    task: Task = make_task(  # type: ignore[assignment]
        "task_1", "succeeded", videos=[video], handler_runs=runs_for(events, **overrides)
    )
    return task


class TestSettled:
    def test_a_submission_error_is_settled(self) -> None:
        assert Tracked(SUCCESS, error="boom").settled()

    def test_waits_for_the_downloads(self) -> None:
        events = timeline(SUCCESS_TYPES[:3])
        task = finished(events, make_video(0, "downloading"))
        assert not Tracked(SUCCESS, task, events).settled()

    def test_waits_for_the_expected_events(self) -> None:
        events = timeline(SUCCESS_TYPES[:4])
        assert not Tracked(SUCCESS, finished(events, make_video(0)), events).settled()

    def test_waits_for_both_runs_of_task_completed(self) -> None:
        events = timeline(SUCCESS_TYPES)
        task = finished(events, make_video(0))
        task["handler_runs"] = task["handler_runs"][:-1]
        assert not Tracked(SUCCESS, task, events).settled()

    def test_waits_for_running_handlers(self) -> None:
        events = timeline(SUCCESS_TYPES)
        task = finished(events, make_video(0), status="queued")
        assert not Tracked(SUCCESS, task, events).settled()

    def test_everything_in(self) -> None:
        events = timeline(SUCCESS_TYPES)
        assert Tracked(SUCCESS, finished(events, make_video(0)), events).settled()

    def test_an_unexpected_outcome_waits_for_nothing_more(self) -> None:
        events = timeline(["task.submitted", "task.failed"])
        task: Task = make_task("task_1", "failed", handler_runs=runs_for(events))  # type: ignore[assignment]
        assert Tracked(SUCCESS, task, events).settled()


@pytest.fixture
def stored(tmp_path: Path, fake_api: FakeApi) -> dict[str, Any]:
    """A video whose file is on disk and served by the fake API."""
    content = b"\x00\x00\x00\x18ftypmp42" * 64
    path = tmp_path / "task_1-0.mp4"
    path.write_bytes(content)
    fake_api.files[("task_1", 0)] = content
    sha = hashlib.sha256(content).hexdigest()
    return make_video(0, sha256=sha, size=len(content), path=str(path))


async def judge(fake_api: FakeApi, tracked: Tracked) -> list[str]:
    async with OmnihookClient("http://demo.test", transport=fake_api.transport) as api:
        verdict = await verify(api, tracked)
    return verdict.problems


async def test_a_good_task_passes(fake_api: FakeApi, stored: dict[str, Any]) -> None:
    events = timeline(SUCCESS_TYPES)
    tracked = Tracked(SUCCESS, finished(events, stored), events)
    async with OmnihookClient("http://demo.test", transport=fake_api.transport) as api:
        verdict = await verify(api, tracked)
    assert verdict.problems == []
    assert (verdict.runs_ok, verdict.runs_failed, verdict.runs_retried) == (6, 0, 1)
    assert verdict.files == ["task_1-0.mp4"]


async def test_a_failed_task_as_expected_passes(fake_api: FakeApi) -> None:
    events = timeline(["task.submitted", "task.processing", "task.failed"])
    task: Task = make_task("task_1", "failed", handler_runs=runs_for(events))  # type: ignore[assignment]
    assert await judge(fake_api, Tracked(FAILURE, task, events)) == []


def overwrite(path: Path, content: bytes) -> None:
    path.write_bytes(content)


async def test_a_changed_file_is_caught(
    fake_api: FakeApi, stored: dict[str, Any], tmp_path: Path
) -> None:
    events = timeline(SUCCESS_TYPES)
    overwrite(Path(stored["path"]), b"x" * stored["size"])
    problems = await judge(fake_api, Tracked(SUCCESS, finished(events, stored), events))
    assert problems == ["video 0: the stored file's sha256 differs from the API's"]


async def test_a_differently_served_file_is_caught(
    fake_api: FakeApi, stored: dict[str, Any]
) -> None:
    events = timeline(SUCCESS_TYPES)
    fake_api.files[("task_1", 0)] = b"other"
    problems = await judge(fake_api, Tracked(SUCCESS, finished(events, stored), events))
    assert problems == ["video 0: the served file's sha256 differs from the API's"]


async def test_repeated_missing_and_stray_events_are_caught(
    fake_api: FakeApi, stored: dict[str, Any]
) -> None:
    events = timeline(
        ["task.submitted", "task.succeeded", "task.succeeded", "video.downloaded", "task.completed",
         "video.download_failed"]
    )  # fmt: skip
    problems = await judge(fake_api, Tracked(SUCCESS, finished(events, stored), events))
    assert problems == [
        "0 x task.processing, expected 1",
        "2 x task.succeeded, expected 1",
        "unexpected 1 x video.download_failed",
    ]


async def test_a_failed_handler_run_is_caught(fake_api: FakeApi, stored: dict[str, Any]) -> None:
    events = timeline(SUCCESS_TYPES)
    task = finished(events, stored, status="failed", attempts=4, last_error="RuntimeError: no")
    problems = await judge(fake_api, Tracked(SUCCESS, task, events))
    assert problems == ["handler demo_flaky on task.completed is failed: RuntimeError: no"]


async def test_the_wrong_outcome_is_caught(fake_api: FakeApi) -> None:
    events = timeline(["task.submitted", "task.processing", "task.failed"])
    task: Task = make_task(  # type: ignore[assignment]
        "task_1", "failed", status_message="Image pixel is invalid", handler_runs=runs_for(events)
    )
    problems = await judge(fake_api, Tracked(SUCCESS, task, events))
    assert problems[0] == "ended failed (Image pixel is invalid), expected succeeded"


async def test_the_demo_plugin_counts_events_and_fails_once(tmp_path: Path) -> None:
    from handlers import Event as HandlerEvent

    path = write_plugin(tmp_path)
    spec = importlib.util.spec_from_file_location("omnihook_demo_plugin_under_test", path)
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)

    def event(attempt: int) -> HandlerEvent:
        now = datetime.now(UTC)
        return HandlerEvent("evt_9", "task.completed", now, {"task": task_data()}, attempt=attempt)

    plugin.demo_count_event(event(1))
    plugin.demo_count_event(event(2))  # a repeated run of the same event counts once
    with pytest.raises(RuntimeError, match="on purpose"):
        await plugin.demo_flaky_on_completed(event(1))
    await plugin.demo_flaky_on_completed(event(2))
    assert seen_event_ids(tmp_path) == {"evt_9"}
