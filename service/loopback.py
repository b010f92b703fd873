"""Run an ASGI app on a loopback socket inside the current event loop.

Used by end-to-end tests, the demo and anything else that needs a real HTTP server in-process:

    async with serve_on_loopback(app) as base_url:
        ...  # http://127.0.0.1:PORT, already accepting requests

The socket is bound here, so ``port=0`` works and the real port is known before uvicorn starts.
The server runs the app's lifespan, installs no signal handlers and shuts down cleanly on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0


class LoopbackServerError(RuntimeError):
    """The server could not start (e.g. its lifespan startup failed)."""


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port=0``: any free port), ready for uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@asynccontextmanager
async def serve_on_loopback(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` while the block runs; yields the base URL."""
    sock = bind_socket(host, port)
    # log_config=None: leave the embedding process's logging setup alone
    config = uvicorn.Config(app, log_level="warning", log_config=None, lifespan="on")
    server = _QuietServer(config)

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits the process when startup fails
            raise LoopbackServerError(f"server on {base_url_of(sock)} failed to start") from exc

    runner = asyncio.create_task(serve(), name=f"loopback-server-{base_url_of(sock)}")
    try:
        await _wait_started(server, runner)
        yield base_url_of(sock)
    finally:
        try:
            await _stop(server, runner)
        finally:
            sock.close()


async def _stop(server: uvicorn.Server, runner: asyncio.Task[None]) -> None:
    server.should_exit = True
    if runner.done():
        error = None if runner.cancelled() else runner.exception()
        if error is not None and not isinstance(error, LoopbackServerError):
            logger.error("loopback server crashed", exc_info=error)
        return
    try:
        await asyncio.wait_for(asyncio.shield(runner), SHUTDOWN_TIMEOUT)
    except TimeoutError:
        server.force_exit = True
        await runner


async def _wait_started(server: uvicorn.Server, runner: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while not server.started:
        if runner.done():
            runner.result()  # re-raise the startup failure
            raise LoopbackServerError("server stopped before it started")
        if loop.time() > deadline:
            server.should_exit = True
            raise LoopbackServerError("server did not start in time")
        await asyncio.sleep(0.005)
