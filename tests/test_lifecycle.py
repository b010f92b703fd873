"""The task state machine, without a database: status only moves forward, events once."""

from __future__ import annotations

import pytest

from service.events import EventEmitter
from service.kling.state import ProviderStatus, ProviderTaskState, ProviderVideo
from service.lifecycle import plan_provider_state, plan_video_status, plan_video_stored
from storage.records import DownloadStatus, TaskStatus
from tests.factories import at, make_task, make_video


def state(status: ProviderStatus, **kwargs: object) -> ProviderTaskState:
    return ProviderTaskState(task_id="kt-1", status=status, **kwargs)  # type: ignore[arg-type]


VIDEO = ProviderVideo(index=0, provider_video_id="v1", url="http://cdn/v1.mp4", duration="5.0")


@pytest.mark.parametrize(
    ("before", "news", "after", "events"),
    [
        (TaskStatus.PENDING, ProviderStatus.SUBMITTED, TaskStatus.SUBMITTED, ["task.submitted"]),
        (
            TaskStatus.SUBMITTED,
            ProviderStatus.PROCESSING,
            TaskStatus.PROCESSING,
            ["task.processing"],
        ),
        (
            TaskStatus.PENDING,
            ProviderStatus.PROCESSING,
            TaskStatus.PROCESSING,
            ["task.submitted", "task.processing"],
        ),
        (
            TaskStatus.SUBMITTED,
            ProviderStatus.SUCCEEDED,
            TaskStatus.SUCCEEDED,
            ["task.processing", "task.succeeded"],
        ),
        (TaskStatus.PROCESSING, ProviderStatus.SUCCEEDED, TaskStatus.SUCCEEDED, ["task.succeeded"]),
        (TaskStatus.SUBMITTED, ProviderStatus.FAILED, TaskStatus.FAILED, ["task.failed"]),
        (
            TaskStatus.PENDING,
            ProviderStatus.FAILED,
            TaskStatus.FAILED,
            ["task.submitted", "task.failed"],
        ),
    ],
)
def test_news_moves_forward_and_announces_each_state_once(
    emitter: EventEmitter,
    before: TaskStatus,
    news: ProviderStatus,
    after: TaskStatus,
    events: list[str],
) -> None:
    task = make_task(status=before, provider_task_id="kt-1")
    videos = (VIDEO,) if news == ProviderStatus.SUCCEEDED else ()
    plan = plan_provider_state(task, [], state(news, videos=videos), now=at(1), emitter=emitter)
    assert plan.change is not None
    assert plan.change.task.status == after
    assert [e.type for e in plan.change.events] == events
    # one handler run per event for the "*" handler
    handler_jobs = [j for j in plan.change.jobs if j.kind == "handler"]
    assert [j.payload["event_type"] for j in handler_jobs] == events


@pytest.mark.parametrize(
    ("before", "news"),
    [
        (TaskStatus.PROCESSING, ProviderStatus.SUBMITTED),
        (TaskStatus.PROCESSING, ProviderStatus.PROCESSING),
        (TaskStatus.SUCCEEDED, ProviderStatus.PROCESSING),
        (TaskStatus.SUCCEEDED, ProviderStatus.SUCCEEDED),
        (TaskStatus.SUCCEEDED, ProviderStatus.FAILED),
        (TaskStatus.FAILED, ProviderStatus.SUCCEEDED),
    ],
)
def test_stale_and_repeated_news_change_nothing_but_last_news(
    emitter: EventEmitter, before: TaskStatus, news: ProviderStatus
) -> None:
    task = make_task(status=before, provider_task_id="kt-1")
    plan = plan_provider_state(task, [], state(news, videos=(VIDEO,)), now=at(5), emitter=emitter)
    assert plan.change is not None
    assert plan.change.task.status == before
    assert plan.change.task.last_news_at == at(5)
    assert plan.change.task.updated_at == task.updated_at
    assert plan.change.events == [] and plan.change.jobs == [] and plan.change.videos == []


def test_success_creates_videos_and_one_download_job_each(emitter: EventEmitter) -> None:
    task = make_task(status=TaskStatus.PROCESSING, provider_task_id="kt-1")
    second = ProviderVideo(index=1, provider_video_id="v2", url="http://cdn/v2.mp4")
    news = state(ProviderStatus.SUCCEEDED, videos=(VIDEO, second), cost="7.2")
    plan = plan_provider_state(task, [], news, now=at(2), emitter=emitter)
    assert plan.change is not None
    assert plan.change.task.cost == "7.2"
    assert [v.index for v in plan.change.videos] == [0, 1]
    downloads = [j for j in plan.change.jobs if j.kind == "download"]
    assert [j.dedupe_key for j in downloads] == [
        f"download:{task.id}:0",
        f"download:{task.id}:1",
    ]
    succeeded = plan.change.events[-1]
    assert succeeded.data["task"]["status"] == "succeeded"
    assert len(succeeded.data["task"]["videos"]) == 2


def test_unconfirmed_success_without_videos_asks_the_provider(emitter: EventEmitter) -> None:
    task = make_task(status=TaskStatus.SUBMITTED, provider_task_id="kt-1")
    plan = plan_provider_state(
        task, [], state(ProviderStatus.SUCCEEDED), now=at(1), emitter=emitter
    )
    assert plan.change is not None
    assert plan.change.task.status == TaskStatus.PROCESSING
    assert [j.kind for j in plan.change.jobs if j.kind != "handler"] == ["sync"]


def test_confirmed_success_without_videos_completes(emitter: EventEmitter) -> None:
    task = make_task(status=TaskStatus.PROCESSING, provider_task_id="kt-1")
    plan = plan_provider_state(
        task, [], state(ProviderStatus.SUCCEEDED), now=at(1), emitter=emitter, confirmed=True
    )
    assert plan.change is not None
    assert [e.type for e in plan.change.events] == ["task.succeeded", "task.completed"]


def test_news_about_another_task_is_ignored(emitter: EventEmitter) -> None:
    task = make_task(status=TaskStatus.SUBMITTED, provider_task_id="kt-1")
    other = ProviderTaskState(task_id="kt-2", status=ProviderStatus.SUCCEEDED, videos=(VIDEO,))
    plan = plan_provider_state(task, [], other, now=at(1), emitter=emitter)
    assert plan.change is None
    assert "ignored" in plan.summary


def test_news_before_the_create_answer_adopts_the_provider_id(emitter: EventEmitter) -> None:
    task = make_task(status=TaskStatus.PENDING, provider_task_id=None)
    plan = plan_provider_state(
        task, [], state(ProviderStatus.PROCESSING), now=at(1), emitter=emitter
    )
    assert plan.change is not None
    assert plan.change.task.provider_task_id == "kt-1"


def test_failure_keeps_the_provider_message(emitter: EventEmitter) -> None:
    task = make_task(status=TaskStatus.PROCESSING, provider_task_id="kt-1")
    news = state(ProviderStatus.FAILED, status_message="Image pixel is invalid")
    plan = plan_provider_state(task, [], news, now=at(1), emitter=emitter)
    assert plan.change is not None
    assert plan.change.task.status_message == "Image pixel is invalid"


def test_last_video_stored_completes_the_task(emitter: EventEmitter) -> None:
    task = make_task(status=TaskStatus.SUCCEEDED)
    first = make_video(task.id, 0, download_status=DownloadStatus.DOWNLOADED)
    second = make_video(task.id, 1, download_status=DownloadStatus.DOWNLOADING)
    plan = plan_video_stored(
        task,
        [first, second],
        second,
        path="x/1.mp4",
        size=10,
        sha256="ab",
        now=at(3),
        emitter=emitter,
    )
    assert plan.change is not None
    assert [(e.type, e.key) for e in plan.change.events] == [
        ("video.downloaded", "video.downloaded:1"),
        ("task.completed", "task.completed"),
    ]
    assert plan.change.events[0].data["video"]["sha256"] == "ab"


def test_a_video_stored_while_others_are_pending_does_not_complete(
    emitter: EventEmitter,
) -> None:
    task = make_task(status=TaskStatus.SUCCEEDED)
    first, second = make_video(task.id, 0), make_video(task.id, 1)
    plan = plan_video_stored(
        task,
        [first, second],
        first,
        path="x/0.mp4",
        size=1,
        sha256="cd",
        now=at(3),
        emitter=emitter,
    )
    assert plan.change is not None
    assert [e.type for e in plan.change.events] == ["video.downloaded"]


def test_failed_download_is_announced_once(emitter: EventEmitter) -> None:
    task = make_task(status=TaskStatus.SUCCEEDED)
    video = make_video(task.id, 0, download_status=DownloadStatus.DOWNLOADING)
    plan = plan_video_status(
        task, [video], video, DownloadStatus.FAILED, error="HTML page", now=at(3), emitter=emitter
    )
    assert plan.change is not None
    assert [e.type for e in plan.change.events] == ["video.download_failed"]
    failed = plan.change.videos[0]
    again = plan_video_status(
        task, [failed], failed, DownloadStatus.FAILED, error="x", now=at(4), emitter=emitter
    )
    assert again.change is None
