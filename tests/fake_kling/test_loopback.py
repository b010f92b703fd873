"""serve_on_loopback: a real uvicorn server in the test's own event loop."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from service.loopback import LoopbackServerError, serve_on_loopback


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def app_with_lifespan(events: list[str], *, fail: bool = False) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        if fail:
            raise RuntimeError("cannot start")
        yield
        events.append("shutdown")

    return Starlette(routes=[Route("/", hello)], lifespan=lifespan)


async def test_serves_on_a_real_port_with_lifespan() -> None:
    events: list[str] = []
    sigint_before = signal.getsignal(signal.SIGINT)
    async with serve_on_loopback(app_with_lifespan(events)) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert int(base_url.rsplit(":", 1)[1]) > 0
        assert events == ["startup"]
        assert signal.getsignal(signal.SIGINT) is sigint_before
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(base_url + "/")
        assert response.text == "hello"
    assert events == ["startup", "shutdown"]
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(base_url + "/")


async def test_startup_failure_raises() -> None:
    events: list[str] = []
    with pytest.raises(LoopbackServerError):
        async with serve_on_loopback(app_with_lifespan(events, fail=True)):
            pytest.fail("should not get here")  # pragma: no cover
    assert events == ["startup"]


async def test_busy_port_is_an_os_error() -> None:
    async with serve_on_loopback(app_with_lifespan([])) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            async with serve_on_loopback(app_with_lifespan([]), port=port):
                pass  # pragma: no cover
