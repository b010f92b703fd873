"""A fake omnihook API behind ``httpx.MockTransport``: tasks, events, videos, scripted answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx

Json = dict[str, Any]


def make_video(index: int = 0, status: str = "downloaded", **fields: Any) -> Json:
    video: Json = {
        "index": index,
        "provider_video_id": f"pv{index}",
        "duration": "5.041",
        "download_status": status,
        "size": 2048 if status == "downloaded" else None,
        "sha256": ("ab" * 32) if status == "downloaded" else None,
        "path": f"/srv/media/task_1/{index}.mp4" if status == "downloaded" else None,
        "error": None,
    }
    video.update(fields)
    return video


def make_task(task_id: str = "task_1", status: str = "submitted", **fields: Any) -> Json:
    task: Json = {
        "id": task_id,
        "external_task_id": f"ext-{task_id}",
        "provider_task_id": "871604988408655901",
        "status": status,
        "status_message": "",
        "model_name": "kling-v3-omni",
        "request": {"prompt": "a fox"},
        "metadata": {},
        "cost": None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:01Z",
        "videos": [],
    }
    task.update(fields)
    return task


def make_event(event_type: str, number: int = 1, **data: Any) -> Json:
    return {
        "id": f"evt_{number}",
        "type": event_type,
        "timestamp": f"2026-01-01T00:00:0{number % 10}Z",
        "data": {"task": {"id": "task_1"}, **data},
    }


def make_run(event_id: str, event_type: str, status: str = "succeeded", **fields: Any) -> Json:
    run: Json = {
        "id": f"run_{event_id}",
        "handler": "demo_handlers:demo_count_event",
        "event_id": event_id,
        "event_type": event_type,
        "status": status,
        "attempts": 1,
        "last_error": None,
        "updated_at": "2026-01-01T00:00:09Z",
    }
    run.update(fields)
    return run


class FakeApi:
    """Holds tasks; each ``GET /v1/tasks/{id}`` may step a task through scripted states."""

    def __init__(self) -> None:
        self.tasks: dict[str, Json] = {}
        self.events: dict[str, list[Json]] = {}
        self.files: dict[tuple[str, int], bytes] = {}
        self.script: dict[str, list[Json]] = {}  # next states, handed out one per GET
        self.requests: list[httpx.Request] = []
        self.submit_answer: tuple[int, Json] | None = None
        self.page: Json | None = None

    def add(self, task: Json, *later_states: Json, events: list[Json] | None = None) -> Json:
        self.tasks[task["id"]] = task
        self.script[task["id"]] = list(later_states)
        self.events[task["id"]] = events or []
        return task

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        parts = [unquote(part) for part in request.url.raw_path.decode().split("?")[0].split("/")]
        routes: dict[tuple[str, int], Callable[..., httpx.Response]] = {
            ("POST", 3): self._submit,
            ("GET", 3): self._list,
            ("GET", 4): self._get,
            ("GET", 5): self._events,
            ("GET", 6): self._video,
            ("POST", 7): self._redownload,
        }
        route = routes.get((request.method, len(parts)))
        if route is None or parts[1:3] != ["v1", "tasks"]:
            return _error(404, "not_found", "no such route")
        return route(request, *parts[3:])

    def _submit(self, request: httpx.Request) -> httpx.Response:
        if self.submit_answer is not None:
            status, body = self.submit_answer
            return httpx.Response(status, json=body)
        body = json.loads(request.content)
        task = self.add(
            make_task("task_new", request=body, external_task_id=body.get("external_task_id"))
        )
        return httpx.Response(201, json=task)

    def _list(self, request: httpx.Request) -> httpx.Response:
        if self.page is not None:
            return httpx.Response(200, json=self.page)
        return httpx.Response(200, json={"tasks": list(self.tasks.values()), "next_cursor": None})

    def _find(self, ref: str) -> Json | None:
        for task in self.tasks.values():
            if ref in (task["id"], task["external_task_id"]):
                return task
        return None

    def _get(self, request: httpx.Request, ref: str) -> httpx.Response:
        task = self._find(ref)
        if task is None:
            return _error(404, "not_found", f"no task {ref}")
        if self.script.get(task["id"]):
            task = self.tasks[task["id"]] = self.script[task["id"]].pop(0)
        return httpx.Response(200, json=task)

    def _events(self, request: httpx.Request, ref: str, _: str) -> httpx.Response:
        task = self._find(ref)
        if task is None:
            return _error(404, "not_found", f"no task {ref}")
        return httpx.Response(200, json={"events": self.events[task["id"]]})

    def _video(self, request: httpx.Request, ref: str, _: str, index: str) -> httpx.Response:
        content = self.files.get((ref, int(index)))
        if content is None:
            return _error(404, "not_found", "no such video")
        return httpx.Response(200, content=content, headers={"content-type": "video/mp4"})

    def _redownload(
        self, request: httpx.Request, task_id: str, _: str, index: str, action: str
    ) -> httpx.Response:
        """``POST .../videos/{n}/download``: only a failed video is fetched again here."""
        task = self.tasks.get(task_id)  # the real route takes the task's own id only
        video = next((v for v in (task or {}).get("videos", []) if v["index"] == int(index)), None)
        if action != "download" or task is None or video is None:
            return _error(404, "not_found", f"task {task_id} has no video {index}")
        if video["download_status"] != "failed":
            return _error(409, "conflict", f"video {index} is {video['download_status']}")
        video.update(download_status="pending", error=None)
        return httpx.Response(202, json=video)


def _error(status: int, code: str, message: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "message": message, **extra})
