"""A handler that blocks its event loop (``time.sleep`` inside ``async def``) in the real
pipeline, served like ``omnihook serve`` (receiver and in-process worker in one process): the
callbacks are still acknowledged at once, the run times out, and the next handler runs on a
fresh handler loop while the blocked one is still blocked."""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.loopback import serve_on_loopback
from service.settings import load_settings

pytestmark = pytest.mark.e2e

BLOCK_SECONDS = 8.0  # how long the handler blocks its loop
TIMEOUT_SECONDS = 2.0  # its timeout: the host gives up on it, and on its loop, well before
PLUGIN = textwrap.dedent(
    f"""
    import json, os, time
    from handlers import on

    def record(name, event):
        with open(os.environ["CONTAINMENT_CALLS"], "a") as calls:
            calls.write(json.dumps({{"handler": name, "attempt": event.attempt}}) + "\\n")

    @on("task.succeeded", timeout={TIMEOUT_SECONDS}, retries=[600])
    async def blocks_its_loop(event):
        record("blocks", event)
        time.sleep({BLOCK_SECONDS})  # wrong in async def: it blocks whatever loop runs it
        record("blocks-done", event)

    @on("video.downloaded")
    async def after(event):
        record("after", event)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    api: httpx.AsyncClient
    fake: httpx.AsyncClient
    calls_file: Path

    def called(self, name: str) -> bool:
        if not self.calls_file.exists():
            return False
        lines = self.calls_file.read_text().splitlines()
        return any(json.loads(line)["handler"] == name for line in lines)

    async def until(self, what: str, check: Callable[[], Awaitable[Any]]) -> Any:
        deadline = time.monotonic() + 20
        while not (found := await check()):
            assert time.monotonic() < deadline, f"never happened: {what}"
            await asyncio.sleep(0.05)
        return found


@pytest.fixture
async def service(
    fake_kling_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Service]:
    plugin = tmp_path / "blocking.py"
    plugin.write_text(PLUGIN)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CONTAINMENT_CALLS", str(calls))
    port = free_port()
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'omnihook.db'}",
        media_dir=tmp_path / "media",
        public_url=f"http://127.0.0.1:{port}",
        kling_base_url=fake_kling_url,
        kling_api_key="e2e-key",
        allow_private_networks=True,
        handlers=str(plugin),
    )
    app = create_app(settings, with_worker=True)  # as `omnihook serve` runs it
    async with (
        serve_on_loopback(app, port=port) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as api,
        httpx.AsyncClient(base_url=fake_kling_url, timeout=10) as fake,
    ):
        yield Service(api, fake, calls)


async def test_a_handler_blocking_its_loop_delays_neither_callbacks_nor_other_handlers(
    service: Service,
) -> None:
    submitted = await service.api.post(
        "/v1/tasks",
        json={
            "model_name": "kling-v3-omni",
            "prompt": "a paper boat",
            "duration": "5",
            "aspect_ratio": "16:9",
        },
    )
    assert submitted.status_code == 201, submitted.text
    task_id = submitted.json()["id"]

    async def blocking() -> bool:
        return service.called("blocks")

    await service.until("the blocking handler started", blocking)
    [sim_task] = (await service.fake.get("/_sim/tasks")).json()["tasks"]
    notification = json.dumps(
        {
            "task_id": sim_task["task_id"],
            "task_status": "processing",  # a late repeat: stored and acknowledged, changes nothing
            "task_status_msg": "",
            "created_at": sim_task["created_at"],
            "updated_at": sim_task["updated_at"],
            "task_info": {"external_task_id": sim_task["external_task_id"]},
        }
    )
    latencies = []
    for _ in range(10):
        started = time.monotonic()
        answer = await service.api.post(
            sim_task["callback_url"],
            content=notification,
            headers={"content-type": "application/json"},
        )
        latencies.append(time.monotonic() - started)
        assert answer.status_code == 200, answer.text
    acknowledged_while_blocking = not service.called("blocks-done")

    async def after_ran() -> bool:
        return service.called("after")

    await service.until("the handler of video.downloaded ran", after_ran)
    after_ran_while_blocking = not service.called("blocks-done")

    async def blocker_timed_out() -> dict[str, Any] | None:
        task = (await service.api.get(f"/v1/tasks/{task_id}")).json()
        for run in task["handler_runs"]:
            if run["handler"].endswith(":blocks_its_loop") and run["last_error"]:
                return dict(run)
        return None

    blocker_run = await service.until("the blocking run was marked timed out", blocker_timed_out)

    # The callbacks were answered at once while a handler blocked its loop for seconds...
    assert acknowledged_while_blocking, "the callbacks were sent after the handler ended"
    assert max(latencies) < 1.0, latencies
    # ...the next handler ran on a fresh loop meanwhile, and the blocking run is to be retried.
    assert after_ran_while_blocking
    assert f"timed out after {TIMEOUT_SECONDS}s" in blocker_run["last_error"]
    assert (blocker_run["status"], blocker_run["attempts"]) == ("queued", 1)
