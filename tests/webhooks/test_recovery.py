"""An endpoint that stalls for a while, then answers again, gets its backlog promptly.

A real worker delivers to a real server on loopback whose answers stall past the timeout for a
few seconds: the endpoint is throttled meanwhile (its circuit open, one attempt at a time), and
once it answers again its backlog (deliveries handed back while it failed, and retries on their
own schedule) arrives within seconds, not after turns reserved while it failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.registry import HandlerRegistry
from service.bootstrap import open_services
from service.clock import utcnow
from service.loopback import serve_on_loopback
from service.services import Services
from service.settings import load_settings
from service.webhooks.endpoints import create_endpoint
from service.webhooks.requests import NewEndpoint
from service.worker.loop import Worker
from storage.memory.backend import MemoryStorage
from storage.records import TaskChange, TaskStatus
from tests.factories import make_event, make_task

BACKLOG = 30
TIMEOUT = 1.0  # seconds an attempt waits for its answer
FAILING_FOR = 4.0  # seconds the endpoint stalls
RECOVERY_DEADLINE = 15.0  # seconds from its recovery to the whole backlog (generous)


class StallingSink:
    """Stalls past the attempts' timeout while ``failing``, then answers 204 at once."""

    def __init__(self) -> None:
        self.failing = True
        self.attempts_while_failing = 0
        self.received: set[str] = set()
        self._arrived = asyncio.Event()

    async def hook(self, request: Request) -> Response:
        await request.body()
        if self.failing:
            self.attempts_while_failing += 1
            await asyncio.sleep(TIMEOUT * 2)  # the attempt times out meanwhile
            return Response(status_code=503)
        self.received.add(request.headers["webhook-id"])
        self._arrived.set()
        return Response(status_code=204)

    async def got(self, event_ids: set[str]) -> None:
        while not event_ids <= self.received:
            await self._arrived.wait()
            self._arrived.clear()


@asynccontextmanager
async def worker_services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = load_settings(
        isolated=True,
        database_url="memory://",
        media_dir=tmp_path / "media",
        kling_api_key="k",
        allow_private_networks=True,  # the sink is on loopback
        webhook_retry_schedule=",".join(["1"] * 30),
        webhook_timeout=TIMEOUT,
    )
    async with open_services(settings, storage=MemoryStorage(), registry=HandlerRegistry()) as s:
        worker = asyncio.create_task(Worker(s, poll_interval=0.05).run())
        try:
            yield s
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


async def test_a_stalling_endpoint_gets_its_backlog_within_seconds_once_it_answers(
    tmp_path: Path,
) -> None:
    sink = StallingSink()
    app = Starlette(routes=[Route("/hook", sink.hook, methods=["POST"])])
    async with serve_on_loopback(app) as base_url, worker_services(tmp_path) as services:
        await create_endpoint(services, NewEndpoint(f"{base_url}/hook", ["*"], ""))
        task = make_task(status=TaskStatus.FAILED)  # final: nothing to ask the provider
        await services.storage.create_task(task)
        events = [
            make_event(task.id, type="task.processing", key=f"progress:{n}", timestamp=utcnow())
            for n in range(BACKLOG)
        ]
        assert await services.storage.apply(TaskChange(task, events=events))

        await asyncio.sleep(FAILING_FOR)
        # throttled: its concurrency at first, then one attempt at a time (each waits its
        # whole timeout), not an attempt per delivery
        assert 1 <= sink.attempts_while_failing <= 4 + 2 * FAILING_FOR / TIMEOUT
        sink.failing = False
        await asyncio.wait_for(sink.got({event.id for event in events}), RECOVERY_DEADLINE)
