"""Fetch a stored task's video again by hand: one that failed for good, or whose file is gone
(its clean file or its watermarked copy: both are fetched again).

The video goes back to ``pending`` and a ``download`` job is written in the same change, so the
request is as durable as any other download. The job asks the provider for the task first: CDN
URLs are signed and expire, so the one stored when the task succeeded may be long dead.

Each re-download is a new *generation* of the video's story: its job's dedupe key and the keys
of its ``video.downloaded`` / ``video.download_failed`` events carry it, so the new outcome is
announced even though the first one was. Ordinary duplicates (two notifications naming the same
video) carry no generation and are still announced once; ``task.completed`` keeps its one key
and so is never announced twice.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from service.apply.lifecycle import Plan
from service.errors import Conflict, NotFound
from service.ids import new_id
from service.jobs.kinds import DOWNLOAD, new_job
from service.services import Services
from storage.records import DownloadStatus, TaskChange, TaskRecord, TaskStatus, VideoRecord

log = logging.getLogger(__name__)

GENERATION = "generation"  # download job payload: this re-download's story (None: the first)
FRESH_URL = "fresh_url"  # download job payload: ask the provider for the URL before fetching


class Refused(Exception):
    """Why a video cannot be fetched again now (becomes a NotFound or Conflict)."""

    def __init__(self, error: type[NotFound] | type[Conflict], message: str) -> None:
        super().__init__(message)
        self.error = error


def plan_redownload(
    task: TaskRecord,
    videos: list[VideoRecord],
    index: int,
    *,
    media_dir: Path,
    generation: str,
    now: datetime,
) -> Plan:
    """Back to ``pending`` with a download job of a new generation; raises :class:`Refused`."""
    video = next((v for v in videos if v.index == index), None)
    if video is None:
        raise Refused(NotFound, f"task {task.id} has no video {index}")
    if task.status != TaskStatus.SUCCEEDED:
        raise Refused(Conflict, f"task {task.id} is {task.status.value}, not succeeded")
    status = video.download_status
    if status in (DownloadStatus.PENDING, DownloadStatus.DOWNLOADING):
        raise Refused(Conflict, f"video {index} is being downloaded right now ({status.value})")
    if status == DownloadStatus.DOWNLOADED and _files_present(video, media_dir):
        raise Refused(Conflict, f"video {index} is stored; delete its file to fetch it again")
    again = replace(
        video,
        download_status=DownloadStatus.PENDING,
        error=None,
        path=None,
        size=None,
        sha256=None,
        watermark_path=None,
        watermark_size=None,
        watermark_sha256=None,
        bytes_received=0,
        bytes_total=None,
        updated_at=now,
    )
    job = new_job(
        DOWNLOAD,
        {"task_id": task.id, "index": index, GENERATION: generation, FRESH_URL: True},
        now=now,
        task_id=task.id,
        dedupe_key=f"download:{task.id}:{index}:{generation}",
    )
    change = TaskChange(task=replace(task, updated_at=now), videos=[again], jobs=[job])
    return Plan(change, f"video {index}: {status.value} -> pending, download queued again")


def _files_present(video: VideoRecord, media_dir: Path) -> bool:
    """Whether every file of a stored output (the clean one, its watermarked copy) is there."""
    paths = [video.path] + ([video.watermark_path] if video.watermark_url else [])
    return all(path and (media_dir / path).is_file() for path in paths)


async def redownload_video(services: Services, task_id: str, index: int) -> VideoRecord:
    """Queue a failed (or deleted) video for download again; answers the video as queued.

    NotFound: no such task or video; Conflict: the task has not succeeded, or the video is
    being downloaded or is stored.
    """
    if await services.storage.get_task(task_id) is None:
        raise NotFound(f"no task {task_id!r}")
    generation = new_id("dl")

    def planner(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        return plan_redownload(
            task,
            videos,
            index,
            media_dir=services.settings.media_dir,
            generation=generation,
            now=services.clock(),
        )

    try:
        summary = await services.change_task(task_id, planner)
    except Refused as exc:
        raise exc.error(str(exc)) from None
    video = next((v for v in await services.storage.list_videos(task_id) if v.index == index), None)
    if video is None:  # the task was deleted between the change and this read
        raise NotFound(f"no task {task_id!r}")
    log.info(
        "task %s %s (by hand)",
        task_id,
        summary,
        extra={"action": "download.requeued", "task_id": task_id},
    )
    return video
