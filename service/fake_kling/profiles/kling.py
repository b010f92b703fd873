"""The official Kling shape (also PowerTokens and CometAPI): kling-api.md §1, §4 and §5.

Outputs are ``task_result.videos[]`` and, with ``[sim:images=N]``, ``task_result.images[]``
(``{"id", "url"}``), each with a ``watermark_url`` when the request asked for a watermark.

A task is found by its ``task_id``, or by its ``external_task_id`` in the path, in the query
form ``GET .../omni-video?external_task_id=`` and in the list (``[sim:lookup]`` hides it from
some of these forms)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..auth import Authenticator
from ..callbacks import CallbackStyle
from ..errors import KlingError, invalid
from ..lost_answer import answer_of
from ..simulator import Simulator
from ..store import IMAGE, VIDEO, SimTask, SimVideo, TaskStatus
from ..submission import parse_create_body
from .base import json_body

PATH = "/v1/videos/omni-video"
PAGE_NUM_RANGE = (1, 1000)
PAGE_SIZE_RANGE = (1, 500)


def task_object(task: SimTask, *, task_id: str | None = None) -> dict[str, Any]:
    """The task as Kling describes it in queries and callbacks (no envelope); ``task_id``
    replaces Kling's id (a gateway relaying the task under its own id)."""
    body: dict[str, Any] = {
        "task_id": task_id or task.task_id,
        "task_status": task.status.value,
        "task_status_msg": task.status_msg,
        "task_info": _task_info(task),
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }
    if task.status is TaskStatus.SUCCEED:
        body["final_unit_deduction"] = task.unit_deduction
        result: dict[str, Any] = {
            "videos": [_output(video) for video in task.videos if video.kind == VIDEO]
        }
        images = [_output(image) for image in task.videos if image.kind == IMAGE]
        if images:
            result["images"] = images
        body["task_result"] = result
    elif task.status is TaskStatus.FAILED:
        body["final_unit_deduction"] = task.unit_deduction
        body["task_result"] = {}
    return body


def _output(output: SimVideo) -> dict[str, Any]:
    """One video or image; ``watermark_url`` beside ``url`` when a watermark was asked for."""
    body: dict[str, Any] = {"id": output.id, "url": output.url}
    if output.duration is not None:
        body["duration"] = output.duration
    if output.watermark_url is not None:
        body["watermark_url"] = output.watermark_url
    return body


def _task_info(task: SimTask) -> dict[str, str]:
    if task.external_task_id is None:
        return {}
    return {"external_task_id": task.external_task_id}


def envelope(data: Any) -> dict[str, Any]:
    """Kling's success envelope around ``data``."""
    return {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}


def _envelope(data: Any) -> JSONResponse:
    return JSONResponse(envelope(data))


class KlingProfile:
    """Bearer-authenticated JSON API with Kling's ``{code, message, request_id, data}``."""

    name = "kling"
    callbacks = CallbackStyle(render=task_object)  # every state, signed when a secret is set

    def api_routes(self, simulator: Simulator, auth: Authenticator) -> list[BaseRoute]:
        api = _KlingEndpoints(simulator, auth)
        return [
            Route(PATH, api.create, methods=["POST"]),
            Route(PATH, api.list_tasks, methods=["GET"]),
            Route(PATH + "/{ref}", api.query, methods=["GET"]),
        ]

    def error_response(self, error: KlingError) -> Response:
        return JSONResponse(
            {"code": error.code, "message": error.message, "request_id": str(uuid.uuid4())},
            status_code=error.http_status,
        )


class _KlingEndpoints:
    def __init__(self, simulator: Simulator, auth: Authenticator) -> None:
        self._simulator = simulator
        self._auth = auth

    async def create(self, request: Request) -> Response:
        self._auth.check(request.headers.get("authorization"))
        body = await json_body(request)
        task = await self._simulator.create(
            parse_create_body(body, profile=self._simulator.config.profile),
            base_url=str(request.base_url),
        )
        answer = _envelope(
            {
                "task_id": task.task_id,
                "task_status": TaskStatus.SUBMITTED.value,
                "task_info": _task_info(task),
                "created_at": task.created_at,
                "updated_at": task.created_at,
            }
        )
        return answer_of(task, answer)

    async def query(self, request: Request) -> Response:
        self._auth.check(request.headers.get("authorization"))
        return _envelope(task_object(self._simulator.get(request.path_params["ref"])))

    async def list_tasks(self, request: Request) -> Response:
        self._auth.check(request.headers.get("authorization"))
        external_id = request.query_params.get("external_task_id")
        if external_id is not None:
            # The query form of a lookup by our id: the one task named so, or 1203.
            return _envelope(task_object(self._simulator.get_by_query(external_id)))
        page_num = _int_param(request, "pageNum", 1, PAGE_NUM_RANGE)
        page_size = _int_param(request, "pageSize", 30, PAGE_SIZE_RANGE)
        tasks = self._simulator.page(page_num, page_size)
        return _envelope([_listed(task) for task in tasks])


def _listed(task: SimTask) -> dict[str, Any]:
    """A task as the list shows it; ``[sim:lookup=none]`` hides its external id there too."""
    body = task_object(task)
    if task.scenario.lookup == "none":
        body["task_info"] = {}
    return body


def _int_param(request: Request, name: str, default: int, bounds: tuple[int, int]) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    low, high = bounds
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, f"must be an integer {low}..{high}") from None
    if not low <= value <= high:
        raise invalid(name, f"must be {low}..{high}")
    return value
