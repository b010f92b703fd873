"""A worker killed with SIGKILL in the middle of a job: another worker takes the job up again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from handlers.loading import module_name_for
from service.ids import new_id
from storage.records import JobStatus, TaskChange
from storage.sqlite.backend import SQLiteStorage
from tests.factories import make_event, make_job, make_task

pytestmark = pytest.mark.e2e

PLUGIN = textwrap.dedent(
    """
    import os, time
    from handlers import on

    MARKS = os.environ["CRASH_TEST_MARKS"]

    @on("task.succeeded")
    def slow(event):
        with open(os.path.join(MARKS, f"attempt-{event.attempt}"), "w"):
            pass
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


async def wait_for(path: Path, timeout: float = 30) -> None:
    for _ in range(int(timeout * 20)):
        if path.exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path.name} never appeared")


async def test_a_job_of_a_killed_worker_is_run_again(tmp_path: Path) -> None:
    db = tmp_path / "omnihook.db"
    marks = tmp_path / "marks"
    marks.mkdir()
    plugin = tmp_path / "crash_plugin.py"
    plugin.write_text(PLUGIN)
    storage = SQLiteStorage(str(db))
    await storage.open()
    task = make_task()
    event = make_event(task.id, type="task.succeeded", key="task.succeeded")
    handler_name = f"{module_name_for(plugin)}:slow"
    job = make_job(
        id=new_id("job"),
        kind="handler",
        task_id=task.id,
        payload={"event_id": event.id, "event_type": event.type, "handler": handler_name},
    )
    await storage.create_task(task)
    assert await storage.apply(TaskChange(task=task, events=[event], jobs=[job]))

    env = {
        **os.environ,
        "OMNIHOOK_DATABASE_URL": f"sqlite:///{db}",
        "OMNIHOOK_MEDIA_DIR": str(tmp_path / "media"),
        "OMNIHOOK_HANDLERS": str(plugin),
        "OMNIHOOK_JOB_LEASE_SECONDS": "1",
        "OMNIHOOK_HANDLER_RETRY_SCHEDULE": "0.1",
        "OMNIHOOK_KLING_API_KEY": "unused",
        "CRASH_TEST_MARKS": str(marks),
    }
    log = tmp_path / "worker.log"
    first = start_worker(env, log)
    try:
        await wait_for(marks / "attempt-1")
        await asyncio.sleep(1.5)  # longer than the lease: only renewals keep it
        running = await storage.get_job(job.id)
        assert running is not None and running.status == JobStatus.RUNNING
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start_worker(env, log)
        try:
            await wait_for(marks / "attempt-2")
            for _ in range(200):
                done = await storage.get_job(job.id)
                if done is not None and done.status == JobStatus.SUCCEEDED:
                    break
                await asyncio.sleep(0.05)
            assert done is not None and done.status == JobStatus.SUCCEEDED, log.read_text()
            assert done.attempts == 2
        finally:
            second.terminate()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        await storage.close()
