"""A web process (``serve --no-worker``, or one with another plugin list) emits events; the
worker's plugins get their runs, whatever the web process has loaded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx

from handlers import Event, on
from handlers.registry import HandlerRegistry
from service.apply.lifecycle import Plan, plan_timed_out
from service.bootstrap import open_services
from service.settings import load_settings
from service.worker.loop import Worker
from storage.records import JobRecord, JobStatus, TaskRecord, TaskStatus, VideoRecord
from tests.factories import make_task

seen: list[tuple[str, str]] = []


@on("task.failed", "task.timed_out")
def in_the_worker(event: Event) -> None:
    seen.append(("in_the_worker", event.type))


@on("*")
def in_the_web_process(event: Event) -> None:
    seen.append(("in_the_web_process", event.type))


def _registry(*handlers: Callable[[Event], None]) -> HandlerRegistry:
    registry = HandlerRegistry()
    for handler in handlers:
        registry.register(handler, source="test")
    return registry


async def test_events_of_a_web_process_get_the_runs_of_the_workers_plugins(
    tmp_path: Path,
) -> None:
    seen.clear()
    settings = load_settings(
        isolated=True,
        database_url=f"sqlite:///{tmp_path / 'omnihook.db'}",
        media_dir=tmp_path / "media",
        kling_api_key="k",
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    task = make_task(status=TaskStatus.SUBMITTED)
    web_plugins = _registry(in_the_web_process)  # not what the worker runs
    async with open_services(settings, registry=web_plugins, transport=transport) as web:
        await web.storage.create_task(task)

        def timed_out(current: TaskRecord, videos: list[VideoRecord]) -> Plan:
            deadline = timedelta(hours=1)
            return plan_timed_out(
                current, videos, deadline=deadline, now=web.clock(), emitter=web.emitter
            )

        summary = await web.change_task(task.id, timed_out)
        assert summary == "submitted -> failed: timed out"
        # nothing ran nor was routed in the web process: one dispatch per event is all it wrote
        jobs = await web.storage.list_jobs(task_id=task.id)
        assert sorted(job.kind for job in jobs) == ["dispatch", "dispatch"]

    worker_plugins = _registry(in_the_worker)
    async with open_services(settings, registry=worker_plugins, transport=transport) as worker:
        running = asyncio.create_task(Worker(worker, poll_interval=0.01).run())

        async def runs_done() -> list[JobRecord]:
            runs = await worker.storage.list_jobs(task_id=task.id, kind="handler")
            finished = [job for job in runs if job.status == JobStatus.SUCCEEDED]
            return runs if len(finished) >= 2 else []

        try:
            deadline = time.monotonic() + 20
            while not (runs := await runs_done()):
                assert time.monotonic() < deadline, "the worker's handlers never ran"
                await asyncio.sleep(0.02)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    assert sorted(seen) == [("in_the_worker", "task.failed"), ("in_the_worker", "task.timed_out")]
    assert sorted((job.payload["event_type"], job.status) for job in runs) == [
        ("task.failed", "succeeded"),
        ("task.timed_out", "succeeded"),
    ]
    assert all(str(job.payload["handler"]).endswith(":in_the_worker") for job in runs)
