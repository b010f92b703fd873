"""``/v1/tasks``: submit, list and inspect tasks, their events and their stored videos."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.errors import error_response
from service.api.query import enum_param, limit_param
from service.downloads.redownload import redownload_video as queue_redownload
from service.errors import NotFound
from service.kling.request import parse_submission
from service.services import Services
from service.submit.submission import submit
from service.views import event_json, handler_run_json, task_json, video_json
from storage.records import TaskRecord, TaskStatus

MAX_SUBMIT_BODY = 16 * 1024 * 1024  # base64 images can be large (10 MB each, a few of them)


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services


async def _task_view(services: Services, task: TaskRecord) -> dict[str, Any]:
    videos = await services.storage.list_videos(task.id)
    position = None
    if task.status == TaskStatus.QUEUED:
        position = await services.storage.queue_position(task)
    return task_json(task, videos, services.settings.media_dir, queue_position=position)


async def _find(services: Services, task_id: str) -> TaskRecord:
    task = await services.storage.get_task(task_id)
    if task is None:
        raise NotFound(f"no task {task_id!r}")
    return task


async def create_task(request: Request) -> Response:
    services = services_of(request)
    raw = await request.body()
    if len(raw) > MAX_SUBMIT_BODY:
        return error_response(413, "body_too_large", "the request body is too large")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return error_response(400, "invalid_json", f"the body is not JSON: {exc}")
    task = await submit(services, parse_submission(body, provider=services.kling.name))
    # 202: accepted, not yet by the provider (waiting for a slot, or its create's answer lost)
    status = 202 if task.status in (TaskStatus.QUEUED, TaskStatus.PENDING) else 201
    return JSONResponse(await _task_view(services, task), status_code=status)


def _encode_cursor(task: TaskRecord) -> str:
    raw = f"{task.created_at.isoformat()}|{task.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, task_id = raw.split("|", 1)
        return datetime.fromisoformat(moment), task_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("cursor is not one this service handed out") from None


async def list_tasks(request: Request) -> Response:
    services = services_of(request)
    params = request.query_params
    status = enum_param(params, "status", TaskStatus)
    limit = limit_param(params)
    try:
        before = _decode_cursor(params["cursor"]) if "cursor" in params else None
    except ValueError as exc:
        return error_response(400, "bad_request", str(exc))
    tasks = await services.storage.list_tasks(status=status, limit=limit + 1, before=before)
    page = tasks[:limit]
    next_cursor = _encode_cursor(page[-1]) if len(tasks) > limit else None
    views = [await _task_view(services, task) for task in page]
    return JSONResponse({"tasks": views, "next_cursor": next_cursor})


async def get_task(request: Request) -> Response:
    services = services_of(request)
    task = await _find(services, request.path_params["task_id"])
    view = await _task_view(services, task)
    runs = await services.storage.list_jobs(task_id=task.id, kind="handler")
    view["handler_runs"] = [handler_run_json(job) for job in runs]
    return JSONResponse(view)


async def task_events(request: Request) -> Response:
    services = services_of(request)
    task = await _find(services, request.path_params["task_id"])
    events = await services.storage.list_events(task.id)
    return JSONResponse({"events": [event_json(event) for event in events]})


async def task_notifications(request: Request) -> Response:
    """Every notification received for the task: raw body, headers, what it changed."""
    services = services_of(request)
    task = await _find(services, request.path_params["task_id"])
    notifications = await services.storage.list_notifications(task.id)
    return JSONResponse(
        {
            "notifications": [
                {
                    "id": n.id,
                    "received_at": n.received_at.isoformat(),
                    "headers": n.headers,
                    "body": n.body.decode("utf-8", errors="replace"),
                    "outcome": n.outcome,
                    "verification": n.verification,
                }
                for n in notifications
            ]
        }
    )


async def redownload_video(request: Request) -> Response:
    """Fetch a video again (NotFound → 404; task not succeeded, or downloading → 409)."""
    services = services_of(request)
    video = await queue_redownload(
        services, request.path_params["task_id"], request.path_params["index"]
    )
    return JSONResponse(video_json(video, services.settings.media_dir), status_code=202)
