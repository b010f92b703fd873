"""``GET /_sim/tasks``: what the simulator did, for tests and the demo. Simulator-only.

The real provider has nothing like it. It lists every task with its state, the directives it
ran under and each callback attempt (time, state, HTTP status or error).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .media import ServedCounts
from .simulator import Simulator
from .store import SimTask


def describe(task: SimTask, served: dict[str, ServedCounts] | None = None) -> dict[str, Any]:
    served = served or {}
    return {
        "task_id": task.task_id,
        "gateway_task_id": task.gateway_id,
        "external_task_id": task.external_task_id,
        "model_name": task.model_name,
        # as the provider read the request, its defaults filled in
        "mode": task.mode,
        "duration": task.requested_duration,
        "task_status": task.status.value,
        "task_status_msg": task.status_msg,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "scenario": asdict(task.scenario),
        "callback_url": task.callback_url,
        # "served": how often the media route sent the video, whole (200) or a range (206),
        # or refused it as expired (403);
        # "watermark_served": the same for its watermarked copy, when it has one
        "videos": [
            {
                **asdict(video),
                "served": asdict(served.get(video.id, ServedCounts())),
                "watermark_served": asdict(served.get(video.watermark_id, ServedCounts()))
                if video.watermark_url
                else None,
            }
            for video in task.videos
        ],
        "callbacks": [
            {
                "sent_at": record.sent_at_ms,
                "state": record.state,
                "webhook_id": record.webhook_id,
                "status_code": record.status_code,
                "error": record.error,
            }
            for record in task.callbacks
        ],
    }


class IntrospectionEndpoint:
    def __init__(self, simulator: Simulator) -> None:
        self._simulator = simulator

    async def tasks(self, request: Request) -> Response:
        served = self._simulator.media.served
        tasks = [describe(task, served) for task in self._simulator.store.all()]
        store = self._simulator.store
        account = {"peak_running": store.peak_running, "refused_full": store.refused_full}
        return JSONResponse({"tasks": tasks, "account": account})
