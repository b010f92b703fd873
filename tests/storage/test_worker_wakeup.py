"""The worker wakes on jobs another process enqueued (Storage.wait_for_jobs), not at its poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.bootstrap import open_services
from service.clock import utcnow
from service.jobs.kinds import new_job
from service.retry import RetrySchedule
from service.services import Services
from service.settings import load_settings
from service.worker.loop import Worker
from service.worker.runners import JobRunner
from storage import create_storage
from storage.base import Storage
from storage.records import JobRecord, JobStatus
from tests.storage.postgres_db import drop_schema, needs_postgres, new_schema_name, url_with_schema

POLL = 60.0  # the worker's own poll: far longer than the test may take


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'omnihook.db'}"
        return
    schema = new_schema_name()
    try:
        yield url_with_schema(schema)
    finally:
        await drop_schema(schema)


async def test_a_job_from_another_process_wakes_an_idle_worker(
    database_url: str, tmp_path: Path
) -> None:
    ran: list[str] = []
    ran_once = asyncio.Event()

    async def run(services: Services, job: JobRecord) -> None:
        ran.append(job.id)
        ran_once.set()

    settings = load_settings(
        isolated=True, database_url=database_url, media_dir=tmp_path / "media", kling_api_key="k"
    )
    never = httpx.MockTransport(lambda request: httpx.Response(500))
    other: Storage = create_storage(database_url)  # "another process": its own connections
    async with open_services(settings, registry=HandlerRegistry(), transport=never) as services:
        await other.open()
        runner = JobRunner(run, lambda services, job: RetrySchedule.of([0], jitter=0))
        worker = asyncio.create_task(
            Worker(services, poll_interval=POLL, runners={"t": runner}).run()
        )
        try:
            await asyncio.sleep(0.5)  # the worker found nothing and sleeps
            job = new_job("t", {}, now=utcnow())
            await other.enqueue([job])

            # SQLite polls every 0.25 s; PostgreSQL is notified at once
            await asyncio.wait_for(ran_once.wait(), 3)
            for _ in range(100):  # then the worker records the outcome
                stored = await other.get_job(job.id)
                if stored is not None and stored.status == JobStatus.SUCCEEDED:
                    break
                await asyncio.sleep(0.02)
            assert stored is not None and stored.status == JobStatus.SUCCEEDED
            assert ran == [job.id]
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await other.close()
