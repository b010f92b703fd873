"""Liveness, readiness and one Prometheus exposition for the whole process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from service.app import create_app
from service.errors import StorageError
from service.services import Services
from service.settings import load_settings
from service.worker.loop import Worker
from service.worker_health import WorkerHealth


@dataclass
class Served:
    client: httpx.AsyncClient
    services: Services


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """The app of a ``serve --no-worker`` process; a test may start a worker of its own."""
    settings = load_settings(
        isolated=True,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        media_dir=tmp_path / "media",
        kling_api_key="k",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://omnihook") as c:
            assert state is not None
            yield Served(c, state["services"])


@pytest.fixture
def client(served: Served) -> httpx.AsyncClient:
    return served.client


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_metrics_cover_requests_and_webhook_deliveries(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    assert 'omnihook_http_requests_total{endpoint="healthz",status="200"}' in text
    assert "omnihook_webhook" in text  # the delivery metrics of this process, same exposition
    # the handler host's threads and loops, same exposition
    assert "omnihook_handler_threads_abandoned 0.0" in text
    assert "omnihook_handler_timeouts_total" in text


async def test_a_bad_list_query_is_a_400_naming_the_problem(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/tasks?status=lost")
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
    assert "status must be one of" in answer.json()["message"]
    assert (await client.get("/v1/handler-runs?limit=0")).status_code == 400


# --- readiness of a process that runs a worker ------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def readiness_until(
    client: httpx.AsyncClient, wanted: Callable[[httpx.Response], bool], timeout: float = 10
) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await client.get("/readyz")
        if wanted(answer):
            return answer
        assert loop.time() < deadline, f"readiness stayed {answer.status_code}: {answer.text}"
        await asyncio.sleep(0.02)


def metric(text: str, name: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


async def test_a_process_with_a_running_worker_is_ready(served: Served) -> None:
    async with running(Worker(served.services, poll_interval=0.01)):
        answer = await readiness_until(served.client, lambda a: a.status_code == 200)
        assert answer.json()["status"] == "ready"
        assert set(answer.json()["worker"]["loops"]) == {"lease", "renew", "reconcile", "admit"}
        text = (await served.client.get("/metrics")).text
        assert metric(text, "omnihook_worker_up") == 1
        assert metric(text, 'omnihook_worker_loop_restarts_total{loop="lease"}') == 0


async def test_a_crash_looping_worker_is_not_ready_until_it_runs_again(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = served.services.storage
    lease_jobs = storage.lease_jobs
    broken = True

    async def failing(**kwargs: Any) -> Any:
        if broken:
            raise RuntimeError("a bug in leasing")
        return await lease_jobs(**kwargs)

    monkeypatch.setattr(storage, "lease_jobs", failing)
    async with running(Worker(served.services, poll_interval=0.01)):
        answer = await readiness_until(served.client, lambda a: a.status_code == 503)
        body = answer.json()
        assert body["status"] == "unavailable" and body["reason"] == "worker"
        assert "lease" in body["message"] and "RuntimeError: a bug in leasing" in body["message"]
        text = (await served.client.get("/metrics")).text
        assert metric(text, "omnihook_worker_up") == 0
        assert metric(text, 'omnihook_worker_loop_restarts_total{loop="lease"}') >= 1
        broken = False  # fixed: the loop restarts on its backoff and runs again
        await readiness_until(served.client, lambda a: a.status_code == 200)
        text = (await served.client.get("/metrics")).text
        assert metric(text, "omnihook_worker_up") == 1


async def test_a_stuck_worker_is_not_ready(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    hung = asyncio.Event()

    async def never_answers(**kwargs: Any) -> Any:
        hung.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(served.services.storage, "lease_jobs", never_answers)
    worker = Worker(served.services, poll_interval=0.01, health=WorkerHealth(clock=clock))
    async with running(worker):
        await asyncio.wait_for(hung.wait(), 5)
        assert (await served.client.get("/readyz")).status_code == 200  # not stuck yet
        clock.now += 60  # a minute without a round of the lease loop
        answer = await served.client.get("/readyz")
        assert answer.status_code == 503
        assert "worker loop lease has not completed a round for 60s" in answer.json()["message"]


async def test_a_worker_that_cannot_lease_for_seconds_is_not_ready(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    attempts: list[int] = []
    retried = asyncio.Event()

    async def unavailable(**kwargs: Any) -> Any:
        attempts.append(1)
        if len(attempts) >= 2:
            retried.set()
        raise StorageError("could not connect to the database")

    monkeypatch.setattr(served.services.storage, "lease_jobs", unavailable)
    worker = Worker(served.services, poll_interval=0.01, health=WorkerHealth(clock=clock))
    async with running(worker):
        await asyncio.wait_for(retried.wait(), 5)
        assert (await served.client.get("/readyz")).status_code == 200  # a blip is tolerated
        clock.now += 6
        answer = await served.client.get("/readyz")
        assert answer.status_code == 503
        assert "could not lease jobs for 6s" in answer.json()["message"]
        assert "could not connect to the database" in answer.json()["message"]


async def test_a_stopped_worker_is_not_ready(served: Served) -> None:
    async with running(Worker(served.services, poll_interval=0.01)):
        await readiness_until(served.client, lambda a: a.status_code == 200)
    answer = await served.client.get("/readyz")
    assert answer.status_code == 503 and answer.json()["message"] == "the worker is not running"


async def test_a_process_without_a_worker_has_no_worker_metrics(client: httpx.AsyncClient) -> None:
    assert "omnihook_worker_up" not in (await client.get("/metrics")).text
