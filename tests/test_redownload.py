"""The re-download plan: what it refuses, the job it writes, and the keys of the new story."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.apply.events import EventEmitter
from service.apply.lifecycle import plan_video_stored
from service.downloads.redownload import FRESH_URL, GENERATION, Refused, plan_redownload
from service.errors import Conflict, NotFound
from storage.records import DownloadStatus, TaskStatus
from tests.factories import at, make_task, make_video


def stored_keys(emitter: EventEmitter, generation: str | None) -> list[str]:
    task = make_task(status=TaskStatus.SUCCEEDED)
    video = make_video(task.id, download_status=DownloadStatus.PENDING)
    plan = plan_video_stored(
        task,
        [video],
        video,
        path="x/0.mp4",
        size=1,
        sha256="ab",
        now=at(1),
        emitter=emitter,
        generation=generation,
    )
    assert plan.change is not None
    return [event.key for event in plan.change.events]


def test_only_a_re_download_gets_event_keys_of_its_own(emitter: EventEmitter) -> None:
    # ordinary duplicates share the first story's keys, so storage announces them once
    assert stored_keys(emitter, None) == ["video.downloaded:0", "task.completed"]
    # task.completed keeps its key: a re-download never completes the task twice
    assert stored_keys(emitter, "dl_1") == ["video.downloaded:0:dl_1", "task.completed"]


def test_a_failed_video_goes_back_to_pending_with_a_job_of_its_generation(
    tmp_path: Path,
) -> None:
    task = make_task(status=TaskStatus.SUCCEEDED)
    failed = make_video(task.id, download_status=DownloadStatus.FAILED, error="HTTP 410")
    plan = plan_redownload(task, [failed], 0, media_dir=tmp_path, generation="dl_7", now=at(2))
    assert plan.change is not None
    [video] = plan.change.videos
    assert (video.download_status, video.error, video.path) == (DownloadStatus.PENDING, None, None)
    [job] = plan.change.jobs
    assert job.kind == "download" and job.dedupe_key == f"download:{task.id}:0:dl_7"
    assert job.payload == {"task_id": task.id, "index": 0, GENERATION: "dl_7", FRESH_URL: True}


@pytest.mark.parametrize(
    ("task_status", "download_status", "index", "error"),
    [
        (TaskStatus.SUCCEEDED, DownloadStatus.FAILED, 3, NotFound),
        (TaskStatus.PROCESSING, DownloadStatus.FAILED, 0, Conflict),
        (TaskStatus.SUCCEEDED, DownloadStatus.PENDING, 0, Conflict),
        (TaskStatus.SUCCEEDED, DownloadStatus.DOWNLOADING, 0, Conflict),
    ],
)
def test_refusals(
    tmp_path: Path,
    task_status: TaskStatus,
    download_status: DownloadStatus,
    index: int,
    error: type[Exception],
) -> None:
    task = make_task(status=task_status)
    video = make_video(task.id, download_status=download_status)
    with pytest.raises(Refused) as refused:
        plan_redownload(task, [video], index, media_dir=tmp_path, generation="g", now=at(1))
    assert refused.value.error is error


def test_a_stored_video_is_fetched_again_only_once_its_file_is_gone(tmp_path: Path) -> None:
    task = make_task(status=TaskStatus.SUCCEEDED)
    video = make_video(task.id, download_status=DownloadStatus.DOWNLOADED, path="t/0.mp4")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "0.mp4").write_bytes(b"x")
    with pytest.raises(Refused):
        plan_redownload(task, [video], 0, media_dir=tmp_path, generation="g", now=at(1))
    (tmp_path / "t" / "0.mp4").unlink()
    plan = plan_redownload(task, [video], 0, media_dir=tmp_path, generation="g", now=at(1))
    assert plan.change is not None and plan.change.jobs


def test_a_missing_watermarked_copy_fetches_the_output_again(tmp_path: Path) -> None:
    task = make_task(status=TaskStatus.SUCCEEDED)
    video = make_video(
        task.id,
        download_status=DownloadStatus.DOWNLOADED,
        path="t/0.mp4",
        size=1,
        sha256="ab",
        watermark_url="https://cdn.example.test/0-wm.mp4",
        watermark_path="t/0.watermarked.mp4",
        watermark_size=1,
        watermark_sha256="cd",
    )
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "0.mp4").write_bytes(b"x")
    (tmp_path / "t" / "0.watermarked.mp4").write_bytes(b"y")
    with pytest.raises(Refused):
        plan_redownload(task, [video], 0, media_dir=tmp_path, generation="g", now=at(1))
    (tmp_path / "t" / "0.watermarked.mp4").unlink()
    plan = plan_redownload(task, [video], 0, media_dir=tmp_path, generation="g", now=at(1))
    assert plan.change is not None
    [again] = plan.change.videos
    assert again.watermark_url == video.watermark_url  # still to be fetched
    assert (again.path, again.watermark_path, again.watermark_size, again.watermark_sha256) == (
        None,
        None,
        None,
        None,
    )
