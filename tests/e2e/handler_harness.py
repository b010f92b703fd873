"""What the handler end-to-end tests share: the real pipeline served as ``omnihook serve`` runs
it (receiver and in-process worker in one process) with a plugin file whose handlers record each
call in a JSON-lines file, and late callbacks sent to it while a handler misbehaves."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.loopback import serve_on_loopback
from service.settings import load_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class HandlerService:
    api: httpx.AsyncClient  # the service
    fake: httpx.AsyncClient  # the simulated provider
    calls_file: Path

    def calls(self) -> list[dict[str, Any]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def called(self, name: str) -> list[dict[str, Any]]:
        return [call for call in self.calls() if call["handler"] == name]

    async def until(
        self, what: str, check: Callable[[], Awaitable[Any]], timeout: float = 20
    ) -> Any:
        deadline = time.monotonic() + timeout
        while not (found := await check()):
            assert time.monotonic() < deadline, f"never happened: {what}"
            await asyncio.sleep(0.05)
        return found

    async def submit(self, prompt: str) -> str:
        """Submit a plain task; its id."""
        submitted = await self.api.post(
            "/v1/tasks",
            json={
                "model_name": "kling-v3-omni",
                "prompt": prompt,
                "duration": "5",
                "aspect_ratio": "16:9",
            },
        )
        assert submitted.status_code == 201, submitted.text
        task_id: str = submitted.json()["id"]
        return task_id

    async def late_repeats(self, count: int) -> list[float]:
        """Send the simulator's only task's callback URL ``count`` late repeats of its
        ``processing`` notification (stored and acknowledged, they change nothing); the seconds
        each took to be acknowledged."""
        [sim_task] = (await self.fake.get("/_sim/tasks")).json()["tasks"]
        notification = json.dumps(
            {
                "task_id": sim_task["task_id"],
                "task_status": "processing",
                "task_status_msg": "",
                "created_at": sim_task["created_at"],
                "updated_at": sim_task["updated_at"],
                "task_info": {"external_task_id": sim_task["external_task_id"]},
            }
        )
        latencies = []
        for _ in range(count):
            started = time.monotonic()
            answer = await self.api.post(
                sim_task["callback_url"],
                content=notification,
                headers={"content-type": "application/json"},
            )
            latencies.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.text
        return latencies


@asynccontextmanager
async def serving_plugin(
    plugin: str,
    *,
    fake_kling_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    calls_variable: str,
    **settings: Any,
) -> AsyncIterator[HandlerService]:
    """The service with the handler plugin ``plugin`` (its source), which writes its calls to the
    file named by the environment variable ``calls_variable``; ``settings`` add to the rest."""
    plugin_file = tmp_path / "plugin_under_test.py"
    plugin_file.write_text(plugin)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv(calls_variable, str(calls))
    port = free_port()
    configured = load_settings(
        database_url=f"sqlite:///{tmp_path / 'omnihook.db'}",
        media_dir=tmp_path / "media",
        public_url=f"http://127.0.0.1:{port}",
        kling_base_url=fake_kling_url,
        kling_api_key="e2e-key",
        allow_private_networks=True,
        handlers=str(plugin_file),
        **settings,
    )
    app = create_app(configured, with_worker=True)  # as `omnihook serve` runs it
    async with (
        serve_on_loopback(app, port=port) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as api,
        httpx.AsyncClient(base_url=fake_kling_url, timeout=10) as fake,
    ):
        yield HandlerService(api, fake, calls)
