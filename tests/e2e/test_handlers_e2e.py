"""Handler plugins end to end: misbehaving handlers on one event in the real pipeline, the
built-in poster, and the example plugin package installed and discovered through its entry point.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers import Event
from handlers.registry import build_registry
from service.app import create_app
from service.loopback import serve_on_loopback
from service.settings import load_settings
from tests.handlers.jpeg import jpeg_size

pytestmark = pytest.mark.e2e

BLOCK_SECONDS = 3.0
# Three handlers on task.succeeded, each misbehaving its own way; every attempt is recorded.
PLUGIN = textwrap.dedent(
    f"""
    import asyncio, json, os, time
    from handlers import on

    CALLS = os.environ["HANDLERS_E2E_CALLS"]

    def record(name, event):
        with open(CALLS, "a") as calls:
            calls.write(json.dumps({{"handler": name, "attempt": event.attempt,
                                     "event": event.id, "at": time.monotonic()}}) + "\\n")

    @on("task.succeeded", retries=[0.2, 0.4])
    def explodes(event):
        record("explodes", event)
        raise RuntimeError(f"explodes on attempt {{event.attempt}}")

    @on("task.succeeded")
    def blocks(event):
        record("blocks", event)
        time.sleep({BLOCK_SECONDS})  # a sync handler may block: it has a thread of its own
        record("blocks-done", event)

    @on("task.succeeded")
    async def slow(event):
        record("slow", event)
        await asyncio.sleep(0.5)
        record("slow-done", event)
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

    def calls(self) -> list[dict[str, Any]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def called(self, name: str) -> list[dict[str, Any]]:
        return [call for call in self.calls() if call["handler"] == name]

    async def until(self, what: str, check: Any, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while not (found := await check()):
            assert time.monotonic() < deadline, f"never happened: {what}"
            await asyncio.sleep(0.05)
        return found


@pytest.fixture
async def service(
    fake_kling_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Service]:
    plugin = tmp_path / "misbehaving.py"
    plugin.write_text(PLUGIN)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("HANDLERS_E2E_CALLS", str(calls))
    port = free_port()
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'omnihook.db'}",
        media_dir=tmp_path / "media",
        public_url=f"http://127.0.0.1:{port}",
        kling_base_url=fake_kling_url,
        kling_api_key="e2e-key",
        allow_private_networks=True,
        handlers=str(plugin),
        handler_timeout=BLOCK_SECONDS + 5,
    )
    app = create_app(settings, with_worker=True)
    async with (
        serve_on_loopback(app, port=port) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as api,
        httpx.AsyncClient(base_url=fake_kling_url, timeout=10) as fake,
    ):
        yield Service(api, fake, calls)


async def test_misbehaving_handlers_run_isolated_while_the_receiver_keeps_answering(
    service: Service,
) -> None:
    submitted = await service.api.post(
        "/v1/tasks",
        json={
            "model_name": "kling-v3-omni",
            "prompt": "lanterns on a river",
            "duration": "5",
            "aspect_ratio": "16:9",
        },
    )
    assert submitted.status_code == 201, submitted.text
    task_id = submitted.json()["id"]

    async def blocking() -> bool:
        return bool(service.called("blocks"))

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
    for _ in range(20):
        started = time.monotonic()
        answer = await service.api.post(
            sim_task["callback_url"],
            content=notification,
            headers={"content-type": "application/json"},
        )
        latencies.append(time.monotonic() - started)
        assert answer.status_code == 200, answer.text
    still_blocking = not service.called("blocks-done")

    async def video_stored() -> bool:
        task = (await service.api.get(f"/v1/tasks/{task_id}")).json()
        return bool(task["videos"]) and task["videos"][0]["download_status"] == "downloaded"

    await service.until("the video was stored", video_stored)
    stored_while_blocking = not service.called("blocks-done")

    async def runs_finished() -> list[dict[str, Any]] | None:
        task = (await service.api.get(f"/v1/tasks/{task_id}")).json()
        runs: list[dict[str, Any]] = task["handler_runs"]
        mine = [r for r in runs if r["event_type"] == "task.succeeded"]
        done = len(mine) == 3 and all(r["status"] in ("succeeded", "failed") for r in runs)
        return runs if done else None

    runs = await service.until("every handler run finished", runs_finished)

    # The receiver answered fast while a handler blocked its thread for seconds...
    assert still_blocking, "the notifications were sent after the blocking handler ended"
    assert max(latencies) < 0.5, latencies
    # ...and the download went on meanwhile.
    assert stored_while_blocking
    by_name = {run["handler"].rsplit(":", 1)[1]: run for run in runs}
    # Each good handler ran exactly once, to the end.
    for name in ("blocks", "slow"):
        assert [c["attempt"] for c in service.called(name)] == [1], name
        assert len(service.called(f"{name}-done")) == 1, name
        assert (by_name[name]["status"], by_name[name]["attempts"]) == ("succeeded", 1)
    # The failing one was retried on its schedule, then marked failed with its error.
    explodes = service.called("explodes")
    assert [c["attempt"] for c in explodes] == [1, 2, 3]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(explodes)]
    assert gaps[0] >= 0.2 * 0.9 and gaps[1] >= 0.4 * 0.9, gaps  # the delays, less the jitter
    assert (by_name["explodes"]["status"], by_name["explodes"]["attempts"]) == ("failed", 3)
    assert "RuntimeError: explodes on attempt 3" in by_name["explodes"]["last_error"]
    failed = await service.api.get("/v1/handler-runs", params={"status": "failed", "task": task_id})
    assert [r["id"] for r in failed.json()["handler_runs"]] == [by_name["explodes"]["id"]]
    # The built-in poster ran on the stored video, in the same pipeline.
    assert by_name["write_poster"]["status"] == "succeeded"
    poster = await service.api.get(f"/v1/tasks/{task_id}/videos/0/poster")
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert jpeg_size(poster.content) == (320, 180)
    dashboard = (await service.api.get("/")).text
    assert f'poster="/v1/tasks/{task_id}/videos/0/poster"' in dashboard


# -- the example plugin package ---------------------------------------------------------------

EXAMPLE = Path(__file__).parents[2] / "examples" / "omnihook-example-plugin"
EXAMPLE_HANDLER = "omnihook_example_plugin:log_completed_task"


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def setuptools_builds_wheels_alone() -> bool:
    """setuptools builds wheels by itself from 70.1 on; before, it needs the ``wheel`` package."""
    try:
        major, minor = (int(part) for part in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1) or find_spec("wheel") is not None


@pytest.fixture
def installed_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example plugin pip-installed into a directory on this process's ``sys.path``.

    A target directory rather than the shared virtualenv's site-packages: other test runs use
    that environment at the same time, and a plugin appearing in it for a few seconds would
    change what their registries load. Entry-point discovery reads every ``sys.path`` entry
    alike, so this is the same discovery a plain ``pip install`` gets.
    """
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = shutil.copytree(EXAMPLE, tmp_path / "example", ignore=shutil.ignore_patterns("build"))
    target = tmp_path / "site-packages"
    # Without build isolation when this environment can build the wheel itself; otherwise pip
    # fetches setuptools into an isolated build, as `pip install -e .` of omnihook just did.
    isolation = ["--no-build-isolation"] if setuptools_builds_wheels_alone() else []
    installed = pip("install", "--no-deps", *isolation, "--target", str(target), str(source))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    monkeypatch.syspath_prepend(str(target))  # also invalidates the import caches
    try:
        yield target
    finally:
        sys.modules.pop("omnihook_example_plugin", None)
        importlib.invalidate_caches()


def test_the_example_plugin_is_discovered_through_its_entry_point(
    installed_example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh registry, as `serve` builds it, finds the installed package's handlers.
    registry = build_registry([])
    handler = registry.get(EXAMPLE_HANDLER)
    assert handler.source == "entry point completed-log"
    assert handler.event_types == frozenset({"task.completed"})
    assert (handler.timeout, handler.retries) == (10.0, (1.0, 10.0, 60.0))
    assert "omnihook_example_plugin:print_failure" in registry

    # `omnihook handlers`, run as a user would, lists them.
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHOOK_")}
    env["PYTHONPATH"] = str(installed_example)
    listed = subprocess.run(
        [sys.executable, "-m", "service.cli", "handlers", "--output", "json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    sources = {item["name"]: item["source"] for item in json.loads(listed.stdout)}
    assert sources[EXAMPLE_HANDLER] == "entry point completed-log"

    # And it does its job, once per event however often it runs.
    log = tmp_path / "completed.jsonl"
    monkeypatch.setenv("COMPLETED_TASKS_LOG", str(log))
    event = Event(
        id="evt_example",
        type="task.completed",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        data={
            "task": {
                "id": "task_1",
                "external_task_id": "order-7",
                "model_name": "kling-v3-omni",
                "request": {"prompt": "a lighthouse at dusk"},
                "cost": "1.0",
                "metadata": {"customer": "c-42"},
                "videos": [{"path": "/srv/media/task_1/0.mp4"}],
            }
        },
    )
    handler.func(event)
    handler.func(event)  # run again, as after a crash that lost the first outcome
    [line] = log.read_text().splitlines()
    assert json.loads(line) | {"completed_at": None} == {
        "event_id": "evt_example",
        "completed_at": None,
        "task_id": "task_1",
        "external_task_id": "order-7",
        "model_name": "kling-v3-omni",
        "prompt": "a lighthouse at dusk",
        "cost": "1.0",
        "videos": ["/srv/media/task_1/0.mp4"],
        "metadata": {"customer": "c-42"},
    }
