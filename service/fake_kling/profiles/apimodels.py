"""apimodels (kling-api.md §6, seed 002): its own API in front of Kling.

- ``POST /api/v1/video/generations``: Bearer key, the model under ``model``; answers
  ``{"code": 200, "msg": "success", "data": {"taskId", "state": "pending", "model"}}``;
- ``GET /api/v1/video/generations?task_id=``: the same envelope, ``state`` pending /
  processing / completed / failed, ``resultUrls[]`` or ``failMsg``;
- errors: the envelope with an HTTP-like ``code`` (400, 401, 402, 404, 429, 500) as status too.

Task ids are its own (``cl...``), and only they are found. It calls back once, on the final
state, with the query answer's envelope, unsigned, and retries until answered 200 (for up to 30
minutes by default). So ``[sim:reorder]``, ``[sim:early]`` and ``[sim:badsig]`` mean nothing here,
nor ``[sim:images]``, nor a watermark: ``resultUrls`` has no place for images or watermarked
copies. ``[sim:media=...]`` does (its CDN serves the files).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..auth import Authenticator
from ..callbacks import CallbackStyle
from ..errors import KlingError
from ..lost_answer import answer_of
from ..simulator import Simulator
from ..store import SimTask, TaskStatus
from ..submission import parse_create_body
from .base import json_body

PATH = "/api/v1/video/generations"
STATES = {
    TaskStatus.SUBMITTED: "pending",
    TaskStatus.PROCESSING: "processing",
    TaskStatus.SUCCEED: "completed",
    TaskStatus.FAILED: "failed",
}
_ID_ALPHABET = string.ascii_lowercase + string.digits


def _status_of(error: KlingError) -> tuple[int, str]:
    """apimodels' own status (and wording) for a refusal of the §4 table."""
    if error.http_status == 401:
        return 401, "Unauthorized - Invalid API key"
    if error.code in (1100, 1101, 1102):
        return 402, "Payment Required - Insufficient credits"
    if error.http_status == 404:
        return 404, f"Not Found - {error.message}"
    if error.http_status in (403, 429):
        return error.http_status, error.message
    if error.http_status >= 500:
        return 500, f"Internal Server Error - {error.message}"
    return 400, f"Bad Request - {error.message}"


def new_task_id() -> str:
    return "cl" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(23))


def task_data(task: SimTask) -> dict[str, Any]:
    """The task as apimodels describes it."""
    data: dict[str, Any] = {
        "taskId": task.public_id,
        "state": STATES[task.status],
        "model": f"kling-video/{task.model_name}",
        "createTime": task.created_at,
    }
    if task.status is TaskStatus.SUCCEED:
        data["resultUrls"] = [video.url for video in task.videos]
        data["completeTime"] = task.updated_at
    elif task.status is TaskStatus.FAILED:
        data["failMsg"] = task.status_msg
        data["completeTime"] = task.updated_at
    return data


def _envelope(data: Any) -> dict[str, Any]:
    return {"code": 200, "msg": "success", "data": data}


def final_callback(task: SimTask) -> dict[str, Any] | None:
    """Only the final state is called back, with the query answer's envelope."""
    return None if task.status.running else _envelope(task_data(task))


class ApiModelsProfile:
    name = "apimodels"
    callbacks = CallbackStyle(
        render=final_callback,
        signed=False,
        retry_until_ok=True,
        unsupported={
            "reorder": "it calls back once, on the final state",
            "early": "it sends no callback before the final state",
            "badsig": "it never signs its callbacks",
            "images": "its answer holds video URLs only (resultUrls)",
        },
        watermarks=False,  # resultUrls again: the request is accepted, no copy is made
    )

    def api_routes(self, simulator: Simulator, auth: Authenticator) -> list[BaseRoute]:
        api = _ApiModelsEndpoints(simulator, auth)
        return [
            Route(PATH, api.create, methods=["POST"]),
            Route(PATH, api.query, methods=["GET"]),
        ]

    def error_response(self, error: KlingError) -> Response:
        status, message = _status_of(error)
        return JSONResponse({"code": status, "msg": message, "data": None}, status_code=status)


class _ApiModelsEndpoints:
    def __init__(self, simulator: Simulator, auth: Authenticator) -> None:
        self._simulator = simulator
        self._auth = auth

    async def create(self, request: Request) -> Response:
        self._auth.check(request.headers.get("authorization"))
        create = parse_create_body(await json_body(request), profile=self._simulator.config.profile)
        task = await self._simulator.create(
            create, base_url=str(request.base_url), gateway_id=new_task_id()
        )
        model = f"kling-video/{task.model_name}"
        answer = JSONResponse(
            _envelope({"taskId": task.public_id, "state": "pending", "model": model})
        )
        return answer_of(task, answer)

    async def query(self, request: Request) -> Response:
        self._auth.check(request.headers.get("authorization"))
        ref = request.query_params.get("task_id")
        if not ref:
            raise KlingError(1200, "task_id is required")
        return JSONResponse(_envelope(task_data(self._simulator.get_public(ref))))
