"""Hung webhook endpoints cost at most their own places: measured on the real service.

Twenty endpoints accept the TCP connection and never answer; one answers at once. A burst of
tasks goes through the whole pipeline (the simulated provider's callbacks, downloads, handler
runs, deliveries): every task's final callback is applied in the time it takes without the hung
endpoints, and the healthy endpoint gets each event within a few seconds of the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.loopback import serve_on_loopback
from tests.e2e.conftest import serving

pytestmark = pytest.mark.e2e

HUNG = 20
TASKS = 6
DELIVERY_DEADLINE = 10.0  # seconds from an event to its delivery at the healthy endpoint


@asynccontextmanager
async def hung_endpoints(count: int) -> AsyncIterator[list[str]]:
    """``count`` servers that accept connections, read what is sent and never answer."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass  # keeps reading (the connection stays open), answers nothing

    servers = [await asyncio.start_server(never_answer, "127.0.0.1", 0) for _ in range(count)]
    try:
        yield [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/hook" for s in servers]
    finally:
        for writer in held:
            writer.close()
        for server in servers:
            server.close()
        await asyncio.gather(*(server.wait_closed() for server in servers))


class HealthyEndpoint:
    """Answers 204 at once, noting when each event arrived (wall clock, as event timestamps)."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}  # event id -> when it arrived (epoch seconds)
        self.late: list[tuple[str, float]] = []
        self._arrived = asyncio.Event()

    async def got_all(self, event_ids: list[str]) -> None:
        while not set(event_ids) <= set(self.received):
            await self._arrived.wait()
            self._arrived.clear()

    async def hook(self, request: Request) -> Response:
        payload: dict[str, Any] = await request.json()
        arrived = time.time()
        emitted = datetime.fromisoformat(payload["timestamp"]).timestamp()
        self.received.setdefault(payload["id"], arrived)
        self._arrived.set()
        if arrived - emitted > DELIVERY_DEADLINE:
            self.late.append((payload["type"], arrived - emitted))
        return Response(status_code=204)


@pytest.mark.parametrize("timeout", [5.0, 15.0])  # their attempts time out in the test, or not
async def test_hung_endpoints_hold_up_neither_callbacks_nor_the_healthy_endpoint(
    fake_kling_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, timeout: float
) -> None:
    healthy = HealthyEndpoint()
    app = Starlette(routes=[Route("/hook", healthy.hook, methods=["POST"])])
    async with (
        hung_endpoints(HUNG) as hung_urls,
        serve_on_loopback(app) as healthy_url,
        serving(fake_kling_url, tmp_path, monkeypatch, webhook_timeout=timeout) as pipeline,
    ):
        for url in [*hung_urls, f"{healthy_url}/hook"]:  # the healthy one last: worst placed
            created = await pipeline.api.post("/v1/webhooks", json={"url": url})
            assert created.status_code == 201, created.text
        started = time.monotonic()
        answers = await asyncio.gather(
            *(
                pipeline.submit(prompt=f"a hung endpoint burst {n}", external_task_id=f"hung-{n}")
                for n in range(TASKS)
            )
        )
        assert all(answer.status_code == 201 for answer in answers), answers
        ids = [answer.json()["id"] for answer in answers]
        # every final callback applied and every video stored, as fast as without hung endpoints
        finished = await asyncio.gather(*(pipeline.wait_finished(i, timeout=30) for i in ids))
        assert {task["status"] for task in finished} == {"succeeded"}
        applied_in = time.monotonic() - started

        events: list[str] = []
        for task_id in ids:
            listed = (await pipeline.api.get(f"/v1/tasks/{task_id}/events")).json()["events"]
            events += [event["id"] for event in listed]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(healthy.got_all(events), DELIVERY_DEADLINE + 5)
        missing = set(events) - set(healthy.received)
        ready = await pipeline.api.get("/readyz")

    assert not missing, f"{len(missing)} of {len(events)} events never reached the healthy one"
    assert not healthy.late, f"delivered to the healthy endpoint too late: {healthy.late}"
    assert applied_in < 30
    assert ready.status_code == 200, ready.text  # hung endpoints do not make the worker unready
