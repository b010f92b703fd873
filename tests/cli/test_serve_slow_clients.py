"""``omnihook serve`` itself, in a process of its own with its default limits: a connection
that sends nothing is closed by the head deadline (10 s), an oversized callback gets a 413 the
client reads, and a normal client is answered as usual."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.http.limits import ServerLimits
from tests.http_support import RawClient, request_head

STARTUP = 30.0
HEAD_TIMEOUT = ServerLimits().head_timeout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Served]:
    port = _free_port()
    env = {
        **os.environ,
        "OMNIHOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'omnihook.db'}",
        "OMNIHOOK_MEDIA_DIR": str(tmp_path / "media"),
        "OMNIHOOK_KLING_API_KEY": "test-key",
    }
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--no-worker"]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        yield Served(f"http://127.0.0.1:{port}", process, tmp_path / "serve.log")
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


async def _wait_ready(served: Served) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP
    async with httpx.AsyncClient(base_url=served.url) as client:
        while True:
            assert served.process.poll() is None, served.log.read_text()
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert loop.time() < deadline, "omnihook serve did not start"
            await asyncio.sleep(0.1)


async def _silent_connection_lasts(url: str) -> float:
    loop = asyncio.get_running_loop()
    async with RawClient.connect(url) as client:
        opened = loop.time()
        assert await client.closed_by_server(within=HEAD_TIMEOUT + 15)
        return loop.time() - opened


async def _oversized_callback(url: str) -> tuple[int, dict[str, str]]:
    body = b"x" * (2 * 1024 * 1024)
    head = request_head(
        "POST", "/callbacks/kling/tok-unknown", f"Content-Length: {len(body)}", "Connection: close"
    )
    async with RawClient.connect(url) as client:
        await client.send(head + body)
        status, headers, _ = await client.answer(within=15)
        return status, headers


async def test_serve_cuts_off_silent_connections_and_answers_413_readably(
    serve: Served,
) -> None:
    await _wait_ready(serve)
    silent = asyncio.create_task(_silent_connection_lasts(serve.url))
    status, headers = await _oversized_callback(serve.url)
    assert status == 413
    assert headers["connection"] == "close"
    async with httpx.AsyncClient(base_url=serve.url) as client:  # others are served meanwhile
        answer = await client.post("/callbacks/kling/tok-unknown", content=json.dumps({}))
        assert answer.status_code == 404
    lasted = await silent
    assert lasted >= HEAD_TIMEOUT * 0.9  # closed by the deadline, not refused at once
