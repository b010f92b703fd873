"""The task state machine, without a database: status only moves forward, events once."""

from __future__ import annotations

import pytest

from service.apply.events import EventEmitter
from service.apply.lifecycle import (
    StoredFile,
    plan_clean_file_stored,
    plan_provider_state,
    plan_video_status,
    plan_video_stored,
    plan_video_url,
)
from service.kling.state import IMAGE, ProviderStatus, ProviderTaskState, ProviderVideo
from storage.records import DownloadStatus, OutputKind, TaskStatus
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


def test_image_outputs_and_watermarked_copies_are_kept_with_the_videos(
    emitter: EventEmitter,
) -> None:
    task = make_task(status=TaskStatus.PROCESSING, provider_task_id="kt-1")
    marked = ProviderVideo(0, "v1", "http://cdn/v1.mp4", "5.0", "http://cdn/v1-wm.mp4")
    image = ProviderVideo(1, "i1", "http://cdn/i1.png", kind=IMAGE)
    news = state(ProviderStatus.SUCCEEDED, videos=(marked, image))
    plan = plan_provider_state(task, [], news, now=at(2), emitter=emitter)
    assert plan.change is not None
    assert [(v.kind, v.watermark_url) for v in plan.change.videos] == [
        (OutputKind.VIDEO, "http://cdn/v1-wm.mp4"),
        (OutputKind.IMAGE, None),
    ]
    assert len([j for j in plan.change.jobs if j.kind == "download"]) == 2
    described = plan.change.events[-1].data["task"]["videos"]
    assert [(v["kind"], v["watermark"]) for v in described] == [
        ("video", {"path": None, "size": None, "sha256": None}),
        ("image", None),
    ]


def test_a_fresh_url_replaces_the_one_it_is_for() -> None:
    task = make_task(status=TaskStatus.SUCCEEDED)
    video = make_video(task.id, url="http://cdn/old.mp4", watermark_url="http://cdn/old-wm.mp4")
    plan = plan_video_url(task, [video], 0, "http://cdn/new-wm.mp4", now=at(1), watermark=True)
    assert plan.change is not None
    [updated] = plan.change.videos
    assert (updated.url, updated.watermark_url) == ("http://cdn/old.mp4", "http://cdn/new-wm.mp4")
    plan = plan_video_url(task, [video], 0, "http://cdn/new.mp4", now=at(1))
    assert plan.change is not None
    assert plan.change.videos[0].url == "http://cdn/new.mp4"
    assert plan.change.videos[0].watermark_url == "http://cdn/old-wm.mp4"


def test_the_clean_file_is_recorded_without_announcing_the_output() -> None:
    task = make_task(status=TaskStatus.SUCCEEDED)
    video = make_video(
        task.id, download_status=DownloadStatus.DOWNLOADING, watermark_url="http://cdn/wm.mp4"
    )
    clean = StoredFile("t/0.mp4", 10, "ab")
    plan = plan_clean_file_stored(task, [video], 0, clean, duration="3.000", now=at(1))
    assert plan.change is not None
    [updated] = plan.change.videos
    assert (updated.path, updated.size, updated.sha256, updated.duration) == (
        "t/0.mp4",
        10,
        "ab",
        "3.000",
    )
    assert updated.download_status == DownloadStatus.DOWNLOADING
    assert plan.change.events == [] and plan.change.jobs == []
