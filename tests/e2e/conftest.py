"""End-to-end fixtures: the real service and the simulated provider, as servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.fake_kling.server import client_base_url
from service.loopback import serve_on_loopback
from service.settings import Settings, load_settings

FINISHED_DOWNLOADS = {"downloaded", "failed"}

# A plugin as a user would write one: records every event it sees, and fails its first
# attempt on task.completed to show that failing handler runs are retried.
PLUGIN = textwrap.dedent(
    """
    import json, os
    from handlers import on

    LOG = os.environ["E2E_HANDLER_LOG"]

    @on("*")
    def record(event):
        with open(LOG, "a") as f:
            f.write(json.dumps({"id": event.id, "type": event.type,
                                "task": event.data["task"]["id"]}) + "\\n")

    @on("task.completed")
    async def flaky(event):
        if event.attempt == 1:
            raise RuntimeError("first attempt fails on purpose")
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Pipeline:
    url: str
    fake_url: str  # the simulator's root (/_sim/tasks, media); omnihook's may add /kling
    api: httpx.AsyncClient
    settings: Settings
    handler_log: Path

    async def submit(self, **body: Any) -> httpx.Response:
        body.setdefault("model_name", "kling-v3-omni")
        body.setdefault("duration", "5")
        body.setdefault("aspect_ratio", "16:9")
        return await self.api.post("/v1/tasks", json=body)

    async def wait_finished(self, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """Poll until failed, or succeeded with every video downloaded or failed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            task: dict[str, Any] = (await self.api.get(f"/v1/tasks/{task_id}")).json()
            if task["status"] == "failed" or (
                task["status"] == "succeeded"
                and task["videos"]
                and all(v["download_status"] in FINISHED_DOWNLOADS for v in task["videos"])
            ):
                return task
            if loop.time() > deadline:
                raise AssertionError(f"task did not finish in {timeout}s: {task}")
            await asyncio.sleep(0.1)

    async def events(self, task_id: str) -> list[str]:
        answer = await self.api.get(f"/v1/tasks/{task_id}/events")
        return [event["type"] for event in answer.json()["events"]]

    async def wait_handler_runs(self, task_id: str, count: int, timeout: float = 20.0) -> list[Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            runs: list[Any] = (await self.api.get(f"/v1/tasks/{task_id}")).json()["handler_runs"]
            done = [r for r in runs if r["status"] in ("succeeded", "failed")]
            if len(done) >= count and len(done) == len(runs):
                return runs
            if loop.time() > deadline:
                raise AssertionError(f"handler runs did not finish: {runs}")
            await asyncio.sleep(0.1)

    async def simulated(self, task: dict[str, Any]) -> dict[str, Any]:
        """The simulator's record of an omnihook task (callback attempts, videos, ...)."""
        async with httpx.AsyncClient(base_url=self.fake_url, trust_env=False) as fake:
            tasks = (await fake.get("/_sim/tasks")).json()["tasks"]
        [found] = [t for t in tasks if t["external_task_id"] == task["external_task_id"]]
        return dict(found)


PipelineFactory = Callable[..., Awaitable[Pipeline]]


@pytest.fixture
async def fake_kling_url() -> AsyncIterator[str]:
    app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.15))
    async with serve_on_loopback(app) as url:
        yield url


@asynccontextmanager
async def serving(
    fake_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> AsyncIterator[Pipeline]:
    """omnihook (API and worker) on loopback against the simulator at ``fake_url``;
    ``overrides`` replace settings (e.g. ``provider``, ``kling_base_url``)."""
    plugin = tmp_path / "e2e_plugin.py"
    plugin.write_text(PLUGIN)
    handler_log = tmp_path / "handler-log.jsonl"
    monkeypatch.setenv("E2E_HANDLER_LOG", str(handler_log))
    port = free_port()
    settings = load_settings(
        **{
            "database_url": f"sqlite:///{tmp_path / 'omnihook.db'}",
            "media_dir": tmp_path / "media",
            "public_url": f"http://127.0.0.1:{port}",
            "kling_base_url": fake_url,
            "kling_api_key": "e2e-key",
            "allow_private_networks": True,
            "handlers": str(plugin),
            "handler_retry_schedule": "0.2,0.4",
            "download_retry_schedule": "0.2,0.4",
            "reconcile_after": 1.0,
            **overrides,
        }
    )
    app = create_app(settings, with_worker=True)
    async with (
        serve_on_loopback(app, port=port) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as api,
    ):
        yield Pipeline(url, fake_url, api, settings, handler_log)


@pytest.fixture
async def pipeline(
    fake_kling_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Pipeline]:
    async with serving(fake_kling_url, tmp_path, monkeypatch) as running:
        yield running


@pytest.fixture
async def make_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PipelineFactory]:
    """Builds a pipeline against a simulator of any profile: ``await make_pipeline(
    FakeKlingConfig(profile="newapi", ...), kling_webhook_secret=...)``. omnihook gets
    ``provider=`` the profile and the base URL its client needs (``.../kling`` for newapi);
    keyword arguments override other settings. Everything stops when the test ends."""
    async with AsyncExitStack() as stack:
        made = 0

        async def make(config: FakeKlingConfig | None = None, **overrides: Any) -> Pipeline:
            nonlocal made
            config = config or FakeKlingConfig(step_seconds=0.15)
            fake_url = await stack.enter_async_context(
                serve_on_loopback(create_fake_kling_app(config))
            )
            made += 1
            home = tmp_path / f"pipeline-{made}"
            home.mkdir()
            settings = {
                "provider": config.profile,
                "kling_base_url": client_base_url(config.profile, fake_url),
                **overrides,
            }
            return await stack.enter_async_context(serving(fake_url, home, monkeypatch, **settings))

        yield make
