"""``/v1/handler-runs``: every (event, handler) run, its outcome, and running it again.

    GET  /v1/handler-runs?status=failed&task=ID&handler=NAME&limit=50&cursor=...
    GET  /v1/handler-runs/{id}
    POST /v1/handler-runs/{id}/retry     200 with the run, queued again; 409 while unfinished

A run's ``id`` is the same one ``GET /v1/tasks/{id}`` lists under ``handler_runs``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from handlers.runs import find_handler_runs, get_handler_run, retry_handler_run
from service.api.errors import error_response
from service.api.query import enum_param, limit_param
from service.api.tasks import services_of
from service.views import handler_run_json
from storage.records import JobRecord, JobStatus


def run_json(job: JobRecord) -> dict[str, Any]:
    """A run as the task view shows it, plus the task it belongs to."""
    return {**handler_run_json(job), "task_id": job.task_id}


async def list_handler_runs(request: Request) -> Response:
    services = services_of(request)
    params = request.query_params
    status = enum_param(params, "status", JobStatus)
    limit = limit_param(params)
    try:
        page = await find_handler_runs(
            services,
            task=params.get("task") or None,
            status=status,
            handler=params.get("handler") or None,
            limit=limit,
            cursor=params.get("cursor") or None,
        )
    except ValueError as exc:  # a cursor we did not hand out
        return error_response(400, "bad_request", str(exc))
    return JSONResponse(
        {"handler_runs": [run_json(job) for job in page.runs], "next_cursor": page.next_cursor}
    )


async def get_run(request: Request) -> Response:
    job = await get_handler_run(services_of(request), request.path_params["run_id"])
    return JSONResponse(run_json(job))


async def retry_run(request: Request) -> Response:
    """Queue a finished run again (NotFound → 404, still queued or running → 409)."""
    job = await retry_handler_run(services_of(request), request.path_params["run_id"])
    return JSONResponse(run_json(job))
