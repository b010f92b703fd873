"""A new-api gateway (EzModel; kling-api.md §6, seeds 001 and 003) in front of Kling.

- ``POST /kling/v1/videos/omni-video``: Bearer key, the model under ``model``; answers the
  OpenAI-style video object ``{"id", "task_id", "object": "video", "model", "created_at"}``
  (seconds, no envelope);
- ``GET /kling/v1/videos/omni-video/{id}``: only the id the create answered; answers
  ``{"code": "success", "data": {"task_id", "status", "progress", ..., "data": <Kling's
  query answer>}}`` with NOT_START / IN_PROGRESS / SUCCESS / FAILURE;
- errors: ``{"code": "<word>", "message", "data": null}`` with an HTTP status.

By default the gateway hands out Kling's task id, as the seeds show; with ``own_task_ids`` it
hands out its own (``task_...``), as new-api does when it hides upstream ids. Callbacks are
Kling's (the seeds document none of their own): the bare task object, for every state, signed
when a webhook secret is set, named by the id the caller was given.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..auth import Authenticator
from ..callbacks import CallbackStyle
from ..config import FakeKlingConfig
from ..errors import KlingError
from ..lost_answer import answer_of
from ..simulator import Simulator
from ..store import SimTask, TaskStatus
from ..submission import parse_create_body
from .base import json_body, seconds
from .kling import PATH, envelope, task_object

STATUS_WORDS = {
    # new-api's word until it has handed the task to Kling: omnihook must read it as submitted
    TaskStatus.SUBMITTED: ("NOT_START", "0%"),
    TaskStatus.PROCESSING: ("IN_PROGRESS", "50%"),
    TaskStatus.SUCCEED: ("SUCCESS", "100%"),
    TaskStatus.FAILED: ("FAILURE", "100%"),
}


def _error_word(error: KlingError) -> str:
    """new-api's own words for a refusal; Kling's code is not passed on."""
    if error.http_status == 401:
        return "invalid_api_key"
    if error.code == 1203:
        return "task_not_exist"
    if error.http_status == 429:
        return "rate_limit_exceeded"
    if error.http_status >= 500:
        return "upstream_error"
    return "task_failed"


def relayed_callback(task: SimTask) -> dict[str, Any]:
    """Kling's callback body, named by the id the gateway handed out."""
    return task_object(task, task_id=task.public_id)


class NewApiProfile:
    name = "newapi"
    callbacks = CallbackStyle(render=relayed_callback)

    def __init__(self, config: FakeKlingConfig) -> None:
        self._own_ids = config.own_task_ids

    def api_routes(self, simulator: Simulator, auth: Authenticator) -> list[BaseRoute]:
        api = _NewApiEndpoints(simulator, auth, own_ids=self._own_ids)
        return [
            Route(PATH, api.create, methods=["POST"]),
            Route(PATH + "/{ref}", api.query, methods=["GET"]),
        ]

    def error_response(self, error: KlingError) -> Response:
        message = "status_code=429" if error.http_status == 429 else error.message
        return JSONResponse(
            {"code": _error_word(error), "message": message, "data": None},
            status_code=error.http_status,
        )


class _NewApiEndpoints:
    def __init__(self, simulator: Simulator, auth: Authenticator, *, own_ids: bool) -> None:
        self._simulator = simulator
        self._auth = auth
        self._own_ids = own_ids

    async def create(self, request: Request) -> Response:
        self._auth.check(request.headers.get("authorization"))
        create = parse_create_body(await json_body(request), profile=self._simulator.config.profile)
        gateway_id = f"task_{secrets.token_urlsafe(18)}" if self._own_ids else None
        task = await self._simulator.create(
            create, base_url=str(request.base_url), gateway_id=gateway_id
        )
        answer = JSONResponse(
            {
                "id": task.public_id,
                "task_id": task.public_id,
                "object": "video",
                "model": task.model_name,
                "created_at": seconds(task.created_at),
            }
        )
        return answer_of(task, answer)

    async def query(self, request: Request) -> Response:
        self._auth.check(request.headers.get("authorization"))
        task = self._simulator.get_public(request.path_params["ref"])
        status, progress = STATUS_WORDS[task.status]
        final = not task.status.running
        return JSONResponse(
            {
                "code": "success",
                "message": "",
                "data": {
                    "task_id": task.public_id,
                    "action": "generate",
                    "status": status,
                    "fail_reason": task.status_msg if task.status is TaskStatus.FAILED else "",
                    "submit_time": seconds(task.created_at),
                    "finish_time": seconds(task.updated_at) if final else 0,
                    "progress": progress,
                    "data": envelope(task_object(task)),  # Kling's own answer, Kling's own id
                },
            }
        )
