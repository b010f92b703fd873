"""Handler plugins end to end: misbehaving handlers on one event in the real pipeline (and the
built-in poster there), and a worker killed with SIGKILL in the middle of one of several runs.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from handlers.registry import build_registry
from service.apply.events import EventEmitter
from storage.records import JobStatus, TaskChange, TaskStatus
from storage.sqlite.backend import SQLiteStorage
from tests.e2e.handler_harness import HandlerService, serving_plugin
from tests.factories import make_task
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


@pytest.fixture
async def service(
    fake_kling_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[HandlerService]:
    async with serving_plugin(
        PLUGIN,
        fake_kling_url=fake_kling_url,
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
        calls_variable="HANDLERS_E2E_CALLS",
        handler_timeout=BLOCK_SECONDS + 5,
    ) as service:
        yield service


async def test_misbehaving_handlers_run_isolated_while_the_receiver_keeps_answering(
    service: HandlerService,
) -> None:
    task_id = await service.submit("lanterns on a river")

    async def blocking() -> bool:
        return bool(service.called("blocks"))

    await service.until("the blocking handler started", blocking)
    latencies = await service.late_repeats(20)
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


# -- a worker killed during one of several runs of one event ------------------------------------

CRASH_PLUGIN = textwrap.dedent(
    """
    import asyncio, os, time
    from handlers import on

    def mark(name, event):
        marks = os.environ["CRASH_MARKS"]
        with open(os.path.join(marks, f"{name}-{event.attempt}"), "x"):  # "x": never twice
            pass

    @on("task.completed")
    def quick(event):
        mark("quick", event)

    @on("task.completed")
    async def quick_async(event):
        await asyncio.sleep(0)
        mark("quick_async", event)

    @on("task.completed")
    def killed(event):
        mark("killed", event)
        if event.attempt == 1:
            time.sleep(60)  # the worker is killed while this runs
    """
)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def test_a_worker_killed_mid_run_reruns_that_run_and_no_finished_one(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    plugin = tmp_path / "crash_handlers.py"
    plugin.write_text(CRASH_PLUGIN)
    db = tmp_path / "omnihook.db"
    storage = SQLiteStorage(str(db))
    await storage.open()
    # The event and its runs, written as the lifecycle writes them (same registry, same names).
    emitter = EventEmitter(build_registry([str(plugin)]), tmp_path / "media")
    task = make_task(status=TaskStatus.SUCCEEDED)
    await storage.create_task(task)
    event, jobs = emitter.emit("task.completed", task=task, videos=[], now=task.updated_at)
    assert await storage.apply(TaskChange(task=task, events=[event], jobs=jobs))
    runs = {job.payload["handler"].rsplit(":", 1)[1]: job.id for job in jobs}

    async def status_of(name: str) -> JobStatus | None:
        job = await storage.get_job(runs[name])
        return job.status if job is not None else None

    async def wait_until(what: str, check: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not await check():
            assert time.monotonic() < deadline, f"never happened: {what}"
            await asyncio.sleep(0.05)

    async def quick_ones_done() -> bool:
        done = [await status_of("quick"), await status_of("quick_async")]
        return (marks / "killed-1").exists() and done == [JobStatus.SUCCEEDED] * 2

    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHOOK_")}
    env.update(
        OMNIHOOK_DATABASE_URL=f"sqlite:///{db}",
        OMNIHOOK_MEDIA_DIR=str(tmp_path / "media"),
        OMNIHOOK_HANDLERS=str(plugin),
        OMNIHOOK_JOB_LEASE_SECONDS="1",
        OMNIHOOK_KLING_API_KEY="unused",
        CRASH_MARKS=str(marks),
    )
    log = tmp_path / "worker.log"
    workers = [start_worker(env, log)]
    try:
        await wait_until("the quick runs finished and the slow one started", quick_ones_done)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        assert await status_of("killed") == JobStatus.RUNNING  # its lease outlives the worker
        workers.append(start_worker(env, log))

        async def rerun_done() -> bool:
            return await status_of("killed") == JobStatus.SUCCEEDED

        await wait_until("the killed run ran again", rerun_done)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(10)
        await storage.close()

    assert sorted(path.name for path in marks.iterdir()) == [
        "killed-1",
        "killed-2",  # taken up again once the dead worker's lease expired
        "quick-1",  # finished before the crash: never run again
        "quick_async-1",
    ]
