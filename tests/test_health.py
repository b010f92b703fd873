"""Liveness, readiness and one Prometheus exposition for the whole process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from service.app import create_app
from service.settings import load_settings


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        isolated=True,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        media_dir=tmp_path / "media",
        kling_api_key="k",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://omnihook") as c:
            yield c


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_metrics_cover_requests_and_webhook_deliveries(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    assert 'omnihook_http_requests_total{endpoint="healthz",status="200"}' in text
    assert "omnihook_webhook" in text  # the delivery metrics of this process, same exposition


async def test_a_bad_list_query_is_a_400_naming_the_problem(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/tasks?status=lost")
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
    assert "status must be one of" in answer.json()["message"]
    assert (await client.get("/v1/handler-runs?limit=0")).status_code == 400
