"""``GET /``: a plain dashboard page — tasks, their timelines, video previews, handler runs and
webhook deliveries — and the poster
images those previews show (``GET /v1/tasks/{id}/videos/{n}/poster``).

Server-rendered with escaped values and no scripts beyond a refresh, so it needs nothing to
build and cannot be turned against its viewer by a crafted prompt or metadata.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from service.api.tasks import services_of
from service.clock import isoformat
from service.errors import NotFound
from service.media_layout import poster_path
from service.services import Services
from storage.records import DownloadStatus, OutputKind, TaskStatus, VideoRecord

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;background:#fafafa}
h1{font-size:1.4rem}.task{background:#fff;border:1px solid #ddd;border-radius:6px;
padding:1rem;margin:0 0 1rem}.status{font-weight:600;padding:.1rem .5rem;border-radius:4px}
.succeeded{background:#d7f5dd}.failed{background:#fbd5d5}.processing,.submitted,.pending
{background:#fdf1c7}.queued{background:#e3e8f4}ol{font-size:.85rem;color:#555}video{max-width:320px;margin:.3rem}
table{border-collapse:collapse;font-size:.85rem}td,th{padding:.2rem .6rem;text-align:left}
"""


async def dashboard(request: Request) -> Response:
    services = services_of(request)
    tasks = await services.storage.list_tasks(limit=30)
    sections = []
    for task in tasks:
        videos = await services.storage.list_videos(task.id)
        events = await services.storage.list_events(task.id)
        runs = await services.storage.list_jobs(task_id=task.id, kind="handler")
        deliveries = await services.storage.list_deliveries(task_id=task.id, limit=200)
        timeline = "".join(
            f"<li>{escape(isoformat(e.timestamp) or '')} <b>{escape(e.type)}</b></li>"
            for e in events
        )
        previews = "".join(_preview(services, task.id, v) for v in videos)
        runs_table = _table(
            ("handler", "event", "status", "attempts", "error"),
            [
                (
                    j.payload.get("handler"),
                    j.payload.get("event_type"),
                    j.status.value,
                    j.attempts,
                    j.last_error,
                )
                for j in runs
            ],
        )
        deliveries_table = _table(
            ("webhook", "event", "status", "attempts", "last code", "error"),
            [
                (
                    d.endpoint_id,
                    d.event_type,
                    d.status.value,
                    d.attempts,
                    d.last_status_code,
                    d.last_error,
                )
                for d in reversed(deliveries)
            ],
        )
        prompt = str(task.request.get("prompt") or "")
        status = task.status.value
        if task.status == TaskStatus.QUEUED:  # where it stands in line for a provider slot
            status += f" #{await services.storage.queue_position(task)}"
        sections.append(
            f'<div class="task"><div><span class="status {escape(task.status.value)}">'
            f"{escape(status)}</span> <code>{escape(task.id)}</code> "
            f"{escape(task.model_name)} — {escape(prompt[:160])}</div>"
            f"<div>{escape(task.status_message)}</div>{previews}<ol>{timeline}</ol>"
            f"{runs_table}{deliveries_table}</div>"
        )
    body = "".join(sections) or "<p>No tasks yet. Submit one with <code>omnihook submit</code>.</p>"
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>omnihook</title>'
        '<meta http-equiv="refresh" content="5">'
        f"<style>{_STYLE}</style></head><body><h1>omnihook</h1>{body}</body></html>"
    )
    return HTMLResponse(page)


def _table(headings: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    """An escaped HTML table, or nothing when there are no rows."""
    if not rows:
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if c is None else str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _poster_file(services: Services, video: VideoRecord) -> Path | None:
    """The poster the built-in ``poster`` handler wrote for a stored video, if it has yet."""
    if video.download_status != DownloadStatus.DOWNLOADED or not video.path:
        return None
    path = poster_path(services.settings.media_dir / video.path)
    return path if path.is_file() else None


def _preview(services: Services, task_id: str, video: VideoRecord) -> str:
    if video.download_status != DownloadStatus.DOWNLOADED:
        return (
            f"<p>video {video.index}: {escape(video.download_status.value)} "
            f"{escape(video.error or '')}</p>"
        )
    src = f"/v1/tasks/{quote(task_id, safe='')}/videos/{video.index}"
    if video.kind == OutputKind.IMAGE:
        return f'<img alt="image {video.index}" src="{escape(src)}">'
    # Until the poster exists, the browser shows the video's first frame (preload=metadata).
    poster = f' poster="{escape(src)}/poster"' if _poster_file(services, video) else ""
    return f'<video controls preload="metadata"{poster} src="{escape(src)}"></video>'


async def video_poster(request: Request) -> Response:
    """``GET /v1/tasks/{id}/videos/{n}/poster``: the JPEG still of a stored video."""
    services = services_of(request)
    task_id = request.path_params["task_id"]
    index = request.path_params["index"]
    task = await services.storage.get_task(task_id)
    if task is None:
        raise NotFound(f"no task {task_id!r}")
    videos = await services.storage.list_videos(task.id)
    video = next((v for v in videos if v.index == index), None)
    if video is None:
        raise NotFound(f"task {task.id} has no video {index}")
    path = _poster_file(services, video)
    if path is None:
        raise NotFound(
            f"video {index} of task {task.id} has no poster yet (it is written once the video "
            "is stored; see the task's handler runs)"
        )
    return FileResponse(path, media_type="image/jpeg", content_disposition_type="inline")
