"""Rich rendering of tasks, shared by ``submit --wait``, ``tasks``, ``tasks show`` and the demo."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from .model import Event, HandlerRun, Task, Video

STATUS_STYLES = {
    "pending": "dim",
    "submitted": "cyan",
    "processing": "yellow",
    "succeeded": "green",
    "failed": "red",
    "queued": "dim",
    "running": "yellow",
    "downloading": "yellow",
    "downloaded": "green",
}
# Piped output is read by people and greps alike: wide enough that paths and hashes stay whole.
PIPE_WIDTH = 160


# One space between columns, none at the edges: ids and paths are long, terminals are not.
COMPACT: dict[str, Any] = {"box": box.SIMPLE_HEAD, "pad_edge": False, "collapse_padding": True}


def make_console(*, stderr: bool = False) -> Console:
    """A console forced into terminal mode only when it really writes to a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty()
    width = None if is_tty or "COLUMNS" in os.environ else PIPE_WIDTH
    return Console(stderr=stderr, force_terminal=is_tty, width=width, highlight=False)


def styled_status(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def task_status(task: Task) -> Text:
    """A task's status, with its place in the queue while it waits for a provider slot."""
    text = styled_status(task["status"])
    position = task.get("queue_position")
    if task["status"] == "queued" and isinstance(position, int):
        text.append(f" #{position}", style="bold")
    return text


def downloads_summary(task: Task) -> Text:
    videos = task["videos"]
    if not videos:
        return Text("-", style="dim")
    stored = sum(1 for video in videos if video["download_status"] == "downloaded")
    failed = sum(1 for video in videos if video["download_status"] == "failed")
    text = Text(f"{stored}/{len(videos)} stored", style="green" if stored == len(videos) else "")
    if failed:
        text.append(f", {failed} failed", style="red")
    return text


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable; keeps mypy sure of a return


def short_hash(sha256: str | None) -> str:
    return sha256[:12] if sha256 else "-"


def short_time(value: str | None) -> str:
    """``2026-01-01T10:00:00.123456Z`` as ``2026-01-01 10:00:00``: all a person needs."""
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


def _or_dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def task_list_table(tasks: Sequence[Task]) -> Table:
    table = Table(**COMPACT)
    for column in ("id", "external id", "status", "model", "videos", "created", "updated"):
        table.add_column(column, overflow="fold")
    for task in tasks:
        table.add_row(
            task["id"],
            _or_dash(task.get("external_task_id")),
            task_status(task),
            _or_dash(task.get("model_name")),
            downloads_summary(task),
            short_time(task.get("created_at")),
            short_time(task.get("updated_at")),
        )
    return table


def task_summary(task: Task) -> Table:
    """The task's own fields as a two-column grid."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("task", task["id"])
    grid.add_row("external id", _or_dash(task.get("external_task_id")))
    grid.add_row("provider task", _or_dash(task.get("provider_task_id")))
    status = task_status(task)
    if task.get("status_message"):
        status.append(f"  {task.get('status_message')}", style="italic")
    grid.add_row("status", status)
    grid.add_row("model", _or_dash(task.get("model_name")))
    if task.get("priority"):
        grid.add_row("priority", str(task.get("priority")))
    estimate = task.get("estimated_cost")
    if isinstance(estimate, dict):
        grid.add_row("estimate", f"{estimate.get('amount')} {estimate.get('currency')}")
    grid.add_row("cost", _or_dash(task.get("cost")))
    grid.add_row("created", _or_dash(task.get("created_at")))
    grid.add_row("updated", _or_dash(task.get("updated_at")))
    if task.get("metadata"):
        grid.add_row("metadata", str(task.get("metadata")))
    return grid


def videos_table(videos: Sequence[Video]) -> Table:
    table = Table(title="videos", title_justify="left", **COMPACT)
    for column in ("#", "kind", "provider id", "duration", "download", "size", "sha256", "path"):
        table.add_column(column, overflow="fold")
    for video in videos:
        download = download_cell(video)
        table.add_row(
            str(video["index"]),
            video.get("kind") or "video",
            _or_dash(video.get("provider_video_id")),
            _or_dash(video.get("duration")),
            download,
            human_size(video.get("size")),
            short_hash(video.get("sha256")),
            _or_dash(video.get("path")),
        )
        copy = video.get("watermark")
        if isinstance(copy, dict):  # the watermarked copy, on a line of its own
            table.add_row(
                "",
                "watermarked",
                "",
                "",
                "",
                human_size(copy.get("size")),
                short_hash(copy.get("sha256")),
                _or_dash(copy.get("path")),
            )
    return table


def download_cell(video: Video) -> Text:
    """The video's download status, with how far it got while it is not stored yet."""
    status = video["download_status"]
    cell = styled_status(status)
    fields: Mapping[str, object] = video  # the progress fields are newer than the Video type
    received, total = fields.get("bytes_received"), fields.get("bytes_total")
    if status in ("downloading", "pending") and isinstance(received, int) and received > 0:
        cell.append(" " + progress_text(received, total if isinstance(total, int) else None))
    if video.get("error"):
        cell.append(f" ({video.get('error')})", style="red")
    return cell


def progress_text(received: int, total: int | None, *, width: int = 10) -> str:
    """``[####------] 42% 84.0 MiB/200.0 MiB``, or just the size when the total is unknown."""
    if not total:
        return human_size(received)
    fraction = min(received / total, 1.0)
    filled = int(fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    return f"[{bar}] {fraction:.0%} {human_size(received)}/{human_size(total)}"


def events_table(events: Sequence[Event]) -> Table:
    table = Table(title="timeline", title_justify="left", **COMPACT)
    for column in ("time", "event", "id", "detail"):
        table.add_column(column, overflow="fold")
    for event in events:
        table.add_row(
            short_time(event["timestamp"]), event["type"], event["id"], _event_detail(event)
        )
    return table


def _event_detail(event: Event) -> str:
    data = event.get("data") or {}
    video = data.get("video")
    if isinstance(video, dict):
        if video.get("error"):
            return f"video {video.get('index')}: {video.get('error')}"
        return f"video {video.get('index')}: {human_size(video.get('size'))}"
    task = data.get("task")
    if isinstance(task, dict) and task.get("status_message"):
        return str(task["status_message"])
    return ""


def handler_runs_table(runs: Sequence[HandlerRun]) -> Table:
    table = Table(title="handler runs", title_justify="left", **COMPACT)
    for column in ("handler", "event", "status", "attempts", "last error", "updated"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run["handler"],
            run["event_type"],
            styled_status(run["status"]),
            str(run["attempts"]),
            _or_dash(run.get("last_error")),
            short_time(run.get("updated_at")),
        )
    return table


def task_progress(task: Task) -> RenderableType:
    """What ``submit --wait`` redraws: the task and its downloads."""
    parts: list[RenderableType] = [task_summary(task)]
    if task["videos"]:
        parts.append(videos_table(task["videos"]))
    return Group(*parts)


def task_detail(task: Task, events: Sequence[Event]) -> RenderableType:
    """Everything ``tasks show`` prints: the task, its videos, its timeline, its handler runs."""
    parts: list[RenderableType] = [task_summary(task)]
    parts.append(videos_table(task["videos"]) if task["videos"] else Text("no videos yet\n"))
    parts.append(events_table(events) if events else Text("no events yet\n"))
    runs = task.get("handler_runs") or []
    parts.append(handler_runs_table(runs) if runs else Text("no handler runs\n"))
    return Group(*parts)
