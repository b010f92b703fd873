"""The task state machine: what a piece of news from the provider changes, and what it causes.

Pure functions: they read records and return a :class:`TaskChange` (or nothing), so the rules
are tested without a database. Status only moves forward::

    queued | pending < submitted < processing < succeeded | failed

News that does not move a task forward (a repeat, a stale or reordered notification) changes
nothing but ``last_news_at``. Each state's event is emitted once per task; a state that was
skipped on the way (a task seen succeeded before it was seen processing) is announced too, in
order, so subscribers always see a consistent story.

A final state reported by a notification that only its URL token vouches for (no signature) is
not believed: it changes nothing but enqueues a ``sync`` job, and our own query of the provider
decides (``confirmed``). So a leaked callback URL can neither end a task nor point the
downloader at a URL of its choosing. A task that never reaches a final state is failed after
``OMNIHOOK_TASK_DEADLINE`` (:func:`plan_timed_out`), announced by ``task.timed_out``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from service.apply import events as ev
from service.apply.events import EventEmitter
from service.jobs.kinds import DOWNLOAD, SUBMIT, SYNC, new_job
from service.kling.state import ProviderStatus, ProviderTaskState
from storage.records import (
    DownloadStatus,
    EventRecord,
    JobRecord,
    OutputKind,
    TaskChange,
    TaskRecord,
    TaskStatus,
    VideoRecord,
)

RANK = {
    TaskStatus.QUEUED: 0,  # nothing sent yet; news of it can only move it forward
    TaskStatus.PENDING: 0,
    TaskStatus.SUBMITTED: 1,
    TaskStatus.PROCESSING: 2,
    TaskStatus.SUCCEEDED: 3,
    TaskStatus.FAILED: 3,
}
FINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED})

_FROM_PROVIDER = {
    ProviderStatus.SUBMITTED: TaskStatus.SUBMITTED,
    ProviderStatus.PROCESSING: TaskStatus.PROCESSING,
    ProviderStatus.SUCCEEDED: TaskStatus.SUCCEEDED,
    ProviderStatus.FAILED: TaskStatus.FAILED,
}


@dataclass
class Plan:
    """What to write (``change`` may be None: nothing at all) and a one-line account of why."""

    change: TaskChange | None
    summary: str


def _events_on_the_way(old: TaskStatus, new: TaskStatus) -> list[str]:
    types = []
    if RANK[old] < RANK[TaskStatus.SUBMITTED]:
        types.append(ev.TASK_SUBMITTED)
    if (
        new in (TaskStatus.PROCESSING, TaskStatus.SUCCEEDED)
        and RANK[old] < RANK[TaskStatus.PROCESSING]
    ):
        types.append(ev.TASK_PROCESSING)
    if new == TaskStatus.SUCCEEDED:
        types.append(ev.TASK_SUCCEEDED)
    elif new == TaskStatus.FAILED:
        types.append(ev.TASK_FAILED)
    return types


def names_another_task(task: TaskRecord, state: ProviderTaskState) -> bool:
    """True when the news is about a different provider task than the stored one."""
    if state.external_task_id and state.external_task_id != task.external_task_id:
        return True
    return bool(task.provider_task_id) and state.task_id != task.provider_task_id


def _adopt_provider_id(task: TaskRecord, state: ProviderTaskState) -> None:
    # News can come before the create answer: it tells us the provider's id first.
    if task.provider_task_id is None and state.task_id:
        task.provider_task_id = state.task_id


def _keep_billing(task: TaskRecord, state: ProviderTaskState) -> None:
    """What the provider says it billed, as it said it (what it does not say is kept)."""
    if state.cost is not None:
        task.cost = state.cost
    billed = {
        "final_unit_deduction": state.cost,
        "final_balance_deduction": state.balance_deduction,
        "billing": [dict(item) for item in state.billing] or None,
    }
    given = {key: value for key, value in billed.items() if value is not None}
    if given:
        task.billing = {**(task.billing or {}), **given}


def plan_provider_state(
    task: TaskRecord,
    videos: list[VideoRecord],
    state: ProviderTaskState,
    *,
    now: datetime,
    emitter: EventEmitter,
    confirmed: bool = False,
    needs_confirmation: bool = False,
) -> Plan:
    """Apply what the provider says. ``confirmed`` means the news comes from our own query of
    the provider (not a notification), so a final state without videos is taken as it is.
    ``needs_confirmation`` means an unsigned notification: a final state it reports is only a
    reason to ask the provider (see the module docstring)."""
    if names_another_task(task, state):
        return Plan(None, f"ignored: names provider task {state.task_id!r}, not this task")
    target = _FROM_PROVIDER[state.status]
    new_task = replace(task, last_news_at=now)
    if RANK[target] <= RANK[task.status]:
        _adopt_provider_id(new_task, state)
        if confirmed:  # our own query: what it says was billed is believed, even late
            _keep_billing(new_task, state)
        return Plan(TaskChange(task=new_task), f"no change: {target} after {task.status}")
    if needs_confirmation and target in FINAL and not confirmed:
        # Nothing of it is taken, not even its task id: only the query's answer counts.
        job = new_job(
            SYNC,
            {"task_id": task.id, "confirm": target.value},
            now=now,
            task_id=task.id,
            dedupe_key=f"confirm:{task.id}:{task.version}",
        )
        return Plan(
            TaskChange(task=new_task, jobs=[job]),
            f"unsigned {target} notification: confirming with the provider",
        )
    _adopt_provider_id(new_task, state)

    jobs: list[JobRecord] = []
    new_videos: list[VideoRecord] = []
    if target == TaskStatus.SUCCEEDED and not state.videos and not confirmed:
        # Some notifications carry no result: ask the provider rather than finish empty.
        jobs.append(new_job(SYNC, {"task_id": task.id}, now=now, task_id=task.id))
        target = TaskStatus.PROCESSING
        if RANK[target] <= RANK[task.status]:
            return Plan(TaskChange(task=new_task, jobs=jobs), "succeeded without videos: querying")

    new_task.status = target
    new_task.updated_at = now
    if state.status_message or target == TaskStatus.FAILED:
        new_task.status_message = state.status_message
    _keep_billing(new_task, state)
    if target == TaskStatus.SUCCEEDED:
        for video in state.videos:
            new_videos.append(
                VideoRecord(
                    task_id=task.id,
                    index=video.index,
                    url=video.url,
                    updated_at=now,
                    provider_video_id=video.provider_video_id,
                    duration=video.duration,
                    kind=OutputKind(video.kind),
                    watermark_url=video.watermark_url,
                )
            )
            jobs.append(
                new_job(
                    DOWNLOAD,
                    {"task_id": task.id, "index": video.index},
                    now=now,
                    task_id=task.id,
                    dedupe_key=f"download:{task.id}:{video.index}",
                )
            )
    all_videos = new_videos or videos
    events: list[EventRecord] = []
    types = _events_on_the_way(task.status, target)
    if target == TaskStatus.SUCCEEDED and not new_videos:
        types.append(ev.TASK_COMPLETED)  # confirmed by a query: nothing to download
    for event_type in types:
        event, handler_jobs = emitter.emit(event_type, task=new_task, videos=all_videos, now=now)
        events.append(event)
        jobs.extend(handler_jobs)
    # Accepted by the provider: a submit job still waiting (the crash-safety one written when
    # the task was sent, or one finishing a lost answer) has nothing left to do.
    settles = (SUBMIT,) if RANK[task.status] < RANK[TaskStatus.SUBMITTED] else ()
    change = TaskChange(task=new_task, videos=new_videos, events=events, jobs=jobs, settles=settles)
    return Plan(change, f"{task.status} -> {target}")


def plan_timed_out(
    task: TaskRecord,
    videos: list[VideoRecord],
    *,
    deadline: timedelta,
    now: datetime,
    emitter: EventEmitter,
) -> Plan:
    """No final state from the provider within ``deadline`` of the submission: the task fails
    with a message saying so. ``task.timed_out`` says why, then ``task.failed`` ends the story
    like any other failure, so a subscriber waiting for a final event is never left hanging."""
    if task.status in FINAL:
        return Plan(None, f"already {task.status}")
    new_task = replace(
        task,
        status=TaskStatus.FAILED,
        status_message=(
            f"timed out: no final state from the provider after {describe_duration(deadline)} "
            f"(last known state: {task.status})"
        ),
        updated_at=now,
    )
    types = _events_on_the_way(task.status, TaskStatus.FAILED)
    types.insert(types.index(ev.TASK_FAILED), ev.TASK_TIMED_OUT)
    events: list[EventRecord] = []
    jobs: list[JobRecord] = []
    for event_type in types:
        event, handler_jobs = emitter.emit(event_type, task=new_task, videos=videos, now=now)
        events.append(event)
        jobs.extend(handler_jobs)
    change = TaskChange(task=new_task, events=events, jobs=jobs)
    return Plan(change, f"{task.status} -> failed: timed out")


def describe_duration(span: timedelta) -> str:
    """``86400 s`` -> ``24 h``: a whole unit people read easily (days from two on)."""
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= max(size, 2 * 86400 if unit == "d" else 0) and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def _with_video(videos: list[VideoRecord], updated: VideoRecord) -> list[VideoRecord]:
    return [updated if video.index == updated.index else video for video in videos]


@dataclass(frozen=True)
class StoredFile:
    """One file of an output, in the media directory."""

    path: str  # relative to the media directory
    size: int
    sha256: str


def plan_clean_file_stored(
    task: TaskRecord,
    videos: list[VideoRecord],
    index: int,
    file: StoredFile,
    *,
    duration: str | None,
    now: datetime,
) -> Plan:
    """The clean file of an output with a watermarked copy is stored; the copy is still to
    come, so the output stays ``downloading`` and nothing is announced yet. A later attempt
    finds the clean file recorded and fetches only the copy."""
    video = next((v for v in videos if v.index == index), None)
    if video is None:
        return Plan(None, f"video {index} unknown")
    if video.download_status in (DownloadStatus.DOWNLOADED, DownloadStatus.FAILED):
        return Plan(None, f"video {index} already {video.download_status}")
    updated = replace(
        video,
        path=file.path,
        size=file.size,
        sha256=file.sha256,
        duration=video.duration or duration,
        updated_at=now,
    )
    change = TaskChange(task=replace(task, updated_at=now), videos=[updated])
    return Plan(change, f"video {index}: clean file stored, watermarked copy to come")


def plan_video_stored(
    task: TaskRecord,
    videos: list[VideoRecord],
    video: VideoRecord,
    *,
    path: str,
    size: int,
    sha256: str,
    now: datetime,
    emitter: EventEmitter,
    duration: str | None = None,
    generation: str | None = None,
    watermark: StoredFile | None = None,
) -> Plan:
    """A video (and its watermarked copy, ``watermark``, when it has one) is in the media
    directory: announce it, and the task's completion if it was the last one. ``duration``
    (read from the file) fills in one the provider did not give. ``generation`` names a
    re-download's story (service.downloads.redownload)."""
    if video.download_status == DownloadStatus.DOWNLOADED:
        return Plan(None, "already downloaded")
    stored = replace(
        video,
        download_status=DownloadStatus.DOWNLOADED,
        path=path,
        size=size,
        sha256=sha256,
        duration=video.duration or duration,
        error=None,
        updated_at=now,
    )
    if watermark is not None:
        stored.watermark_path = watermark.path
        stored.watermark_size = watermark.size
        stored.watermark_sha256 = watermark.sha256
    all_videos = _with_video(videos, stored)
    new_task = replace(task, updated_at=now)
    event, jobs = emitter.emit(
        ev.VIDEO_DOWNLOADED,
        task=new_task,
        videos=all_videos,
        now=now,
        video=stored,
        generation=generation,
    )
    events = [event]
    if all(v.download_status == DownloadStatus.DOWNLOADED for v in all_videos):
        done, done_jobs = emitter.emit(ev.TASK_COMPLETED, task=new_task, videos=all_videos, now=now)
        events.append(done)
        jobs = jobs + done_jobs
    change = TaskChange(task=new_task, videos=[stored], events=events, jobs=jobs)
    return Plan(change, f"video {video.index} stored")


def plan_video_status(
    task: TaskRecord,
    videos: list[VideoRecord],
    video: VideoRecord,
    status: DownloadStatus,
    *,
    error: str | None,
    now: datetime,
    emitter: EventEmitter,
    generation: str | None = None,
) -> Plan:
    """A download started, paused for a retry, or failed for good (announced; ``generation``
    names a re-download's story, service.downloads.redownload)."""
    if video.download_status in (DownloadStatus.DOWNLOADED, DownloadStatus.FAILED):
        return Plan(None, f"video {video.index} already {video.download_status}")
    updated = replace(video, download_status=status, error=error, updated_at=now)
    new_task = replace(task, updated_at=now)
    change = TaskChange(task=new_task, videos=[updated])
    if status == DownloadStatus.FAILED:
        event, jobs = emitter.emit(
            ev.VIDEO_DOWNLOAD_FAILED,
            task=new_task,
            videos=_with_video(videos, updated),
            now=now,
            video=updated,
            generation=generation,
        )
        change.events.append(event)
        change.jobs.extend(jobs)
    return Plan(change, f"video {video.index} {status}")


def plan_video_url(
    task: TaskRecord,
    videos: list[VideoRecord],
    index: int,
    url: str,
    *,
    now: datetime,
    watermark: bool = False,
) -> Plan:
    """The provider handed out a fresh URL for a video (``watermark``: for its watermarked
    copy) whose URL expired: download from it."""
    video = next((v for v in videos if v.index == index), None)
    if video is None:
        return Plan(None, f"video {index} unknown")
    current = video.watermark_url if watermark else video.url
    if current == url or video.download_status in (
        DownloadStatus.DOWNLOADED,
        DownloadStatus.FAILED,
    ):
        return Plan(None, f"video {index}: URL unchanged")
    if watermark:
        updated = replace(video, watermark_url=url, updated_at=now)
    else:
        updated = replace(video, url=url, updated_at=now)
    what = "fresh URL of the watermarked copy" if watermark else "fresh URL"
    return Plan(TaskChange(task=task, videos=[updated]), f"video {index}: {what}")
