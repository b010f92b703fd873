"""Slow and hostile clients against a real uvicorn configured as ``omnihook serve`` runs it
(:mod:`service.http`), with short limits so the deadlines pass quickly: a head or a body that
does not come is cut off, a normal client (keep-alive included) is not, an oversized body gets
a 413 the client can read, and open connections are capped."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.app import create_app
from service.http.limits import ServerLimits
from service.receiver.limits import MAX_NOTIFICATION_BYTES
from service.receiver.verify import token_hash
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from tests.factories import make_task
from tests.http_support import RawClient, guarded_server, request_head
from tests.receiver_support import kling_task

MIB = 1024 * 1024
TOKEN = "tok-" + "s" * 40
CALLBACK = f"/callbacks/kling/{TOKEN}"
LIMITS = ServerLimits(
    head_timeout=0.5,
    body_idle_timeout=0.5,
    body_timeout=2.0,
    linger_bytes=16 * MIB,  # more than the default, so that 8 MB (over socket buffers) fits
    linger_seconds=5.0,  # generous: a busy machine still drains 2 MB in time
    keep_alive=5,
    max_connections=8,
)
BOUND = 10.0  # what "cut off within the limit" is allowed, on a slow and busy machine
BODY = json.dumps(kling_task("kt-1", "processing")).encode()


class Served:
    def __init__(self, url: str, storage: MemoryStorage, task_id: str) -> None:
        self.url = url
        self.storage = storage
        self.task_id = task_id

    async def stored(self) -> int:
        return len(await self.storage.list_notifications(self.task_id))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with _serve(tmp_path, LIMITS) as opened:
        yield opened


@contextlib.asynccontextmanager
async def _serve(tmp_path: Path, limits: ServerLimits) -> AsyncIterator[Served]:
    storage = MemoryStorage()
    settings = load_settings(
        database_url="memory://", media_dir=tmp_path / "media", kling_api_key="k"
    )
    app = create_app(settings, storage=storage, registry=HandlerRegistry())
    async with guarded_server(app, limits) as url:
        task = make_task(callback_token_hash=token_hash(TOKEN), provider_task_id="kt-1")
        await storage.create_task(task)
        yield Served(url, storage, task.id)


def _callback_head(length: int, *extra: str) -> bytes:
    return request_head(
        "POST", CALLBACK, "Content-Type: application/json", f"Content-Length: {length}", *extra
    )


# -- heads ----------------------------------------------------------------------------------


async def test_a_connection_that_sends_nothing_is_closed(served: Served) -> None:
    loop = asyncio.get_running_loop()
    async with RawClient.connect(served.url) as client:
        opened = loop.time()
        assert await client.closed_by_server(within=BOUND)
        assert loop.time() - opened >= LIMITS.head_timeout * 0.9  # by the deadline, not at once


async def test_a_head_sent_a_byte_at_a_time_is_cut_off_while_it_trickles(served: Served) -> None:
    head = _callback_head(len(BODY))[:-4]  # never the blank line that ends a head
    sent = 0
    async with RawClient.connect(served.url) as client:

        async def trickle() -> None:
            nonlocal sent
            for byte in head:
                await client.send(bytes([byte]))
                sent += 1
                await asyncio.sleep(0.05)

        sending = asyncio.create_task(trickle())
        try:
            assert await client.closed_by_server(within=BOUND)
            assert sent < len(head)  # cut off while still sending, not after
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
    assert await served.stored() == 0


# -- bodies ---------------------------------------------------------------------------------


async def test_a_body_that_stops_coming_is_answered_408_and_closed(served: Served) -> None:
    async with RawClient.connect(served.url) as client:
        await client.send(_callback_head(len(BODY)) + BODY[:10])
        status, headers, body = await client.answer(within=BOUND)
        assert status == 408
        assert json.loads(body)["error"] == "request_timeout"
        assert headers["connection"] == "close"
        assert await client.closed_by_server(within=BOUND)
    assert await served.stored() == 0


async def test_a_body_that_trickles_is_cut_off_at_the_whole_body_deadline(
    tmp_path: Path,
) -> None:
    # Pauses far shorter than the idle limit, so only the whole-body deadline can apply.
    limits = dataclasses.replace(LIMITS, body_idle_timeout=5.0, body_timeout=1.5)
    padded = BODY[:-1] + b', "pad": "' + b"x" * 200 + b'"}'
    async with _serve(tmp_path, limits) as served, RawClient.connect(served.url) as client:
        await client.send(_callback_head(len(padded)))
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def trickle() -> None:
            for byte in padded:  # 30 s of it
                await client.send(bytes([byte]))
                await asyncio.sleep(0.1)

        sending = asyncio.create_task(trickle())
        try:
            status, _, _ = await client.answer(within=BOUND)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        assert status == 408
        assert loop.time() - started >= limits.body_timeout * 0.9
        assert await served.stored() == 0


# -- normal clients -------------------------------------------------------------------------


async def test_a_normal_client_is_served_and_its_keep_alive_connection_kept(
    served: Served,
) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        first = await client.post(CALLBACK, content=BODY)
        assert first.status_code == 200, first.text
        # Idle between two requests for longer than a head may take: that is keep-alive's
        # business, not the head deadline's.
        await asyncio.sleep(LIMITS.head_timeout * 3)
        second = await client.post(CALLBACK, content=BODY)
        assert second.status_code == 200, second.text
        assert (await client.get("/healthz")).status_code == 200
    assert await served.stored() == 2


async def test_a_head_and_body_in_several_reads_are_fine(served: Served) -> None:
    head = _callback_head(len(BODY))
    async with RawClient.connect(served.url) as client:
        for part in (head[:20], head[20:-2], head[-2:] + BODY[:5], BODY[5:]):
            await client.send(part)
            await asyncio.sleep(0.05)
        status, _, _ = await client.answer()
        assert status == 200
        await client.send(_callback_head(len(BODY)) + BODY)  # and again, on the same connection
        status, _, _ = await client.answer()
        assert status == 200
    assert await served.stored() == 2


# -- oversized bodies -----------------------------------------------------------------------


@pytest.mark.parametrize("closing", [False, True], ids=["keep-alive", "connection-close"])
@pytest.mark.parametrize("size", [2 * MIB, 8 * MIB], ids=["2MB", "8MB"])
async def test_an_oversized_callback_gets_a_413_the_client_reads(
    served: Served, closing: bool, size: int
) -> None:
    body = b"x" * size  # 8 MB: more than loopback's socket buffers hold for the server
    extra = ("Connection: close",) if closing else ()
    async with RawClient.connect(served.url) as client:
        # All of it sent before reading, as a simple client does: without lingering, the
        # server's close while this is unread made the kernel reset the connection.
        await client.send(_callback_head(len(body), *extra) + body)
        status, headers, answer = await client.answer(within=BOUND)
        assert status == 413
        assert json.loads(answer)["error"] == "body_too_large"
        assert headers["connection"] == "close"
        assert await client.closed_by_server(within=BOUND)
    assert await served.stored() == 0


async def test_an_oversized_chunked_callback_gets_a_readable_413(served: Served) -> None:
    payload = b"x" * (MAX_NOTIFICATION_BYTES + 512 * 1024)
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(payload[i : i + 65536]), payload[i : i + 65536])
        for i in range(0, len(payload), 65536)
    )
    head = request_head("POST", CALLBACK, "Transfer-Encoding: chunked")
    async with RawClient.connect(served.url) as client:
        await client.send(head + chunks + b"0\r\n\r\n")
        status, headers, _ = await client.answer(within=BOUND)
        assert status == 413
        assert headers["connection"] == "close"


async def test_an_oversized_api_body_gets_a_readable_413_before_the_app_buffers_it(
    served: Served,
) -> None:
    body = b'{"url": "https://example.com/' + b"x" * (2 * 1024 * 1024) + b'"}'
    head = request_head(
        "POST", "/v1/webhooks", "Content-Type: application/json", f"Content-Length: {len(body)}"
    )
    async with RawClient.connect(served.url) as client:
        await client.send(head + body)
        status, headers, answer = await client.answer(within=BOUND)
        assert status == 413
        assert json.loads(answer)["error"] == "body_too_large"
        assert headers["connection"] == "close"
    async with httpx.AsyncClient(base_url=served.url) as api:
        assert (await api.get("/v1/webhooks")).json()["webhooks"] == []


async def test_a_streamed_api_body_past_its_cap_is_413(served: Served) -> None:
    head = request_head("PATCH", "/v1/webhooks/wh_x", "Transfer-Encoding: chunked")
    chunk = b"%x\r\n%s\r\n" % (32 * 1024, b"x" * 32 * 1024)
    async with RawClient.connect(served.url) as client:
        await client.send(head + chunk * 4 + b"0\r\n\r\n")  # 128 KiB, over the 64 KiB cap
        status, headers, answer = await client.answer(within=BOUND)
        assert status == 413
        assert json.loads(answer)["error"] == "body_too_large"
        assert headers["connection"] == "close"


async def test_a_declared_oversized_body_awaiting_100_continue_is_refused_unread(
    served: Served,
) -> None:
    async with RawClient.connect(served.url) as client:
        await client.send(_callback_head(8 * MAX_NOTIFICATION_BYTES, "Expect: 100-continue"))
        status, headers, _ = await client.answer(within=BOUND)
        assert status == 413  # at once, with no 100 Continue first
        assert headers["connection"] == "close"


# -- the connection cap ---------------------------------------------------------------------


async def test_connections_over_the_cap_are_refused_with_503_then_accepted_again(
    tmp_path: Path,
) -> None:
    # Heads may take long here: the connections that fill the cap stay open until closed.
    limits = dataclasses.replace(LIMITS, head_timeout=60.0, max_connections=4)
    async with _serve(tmp_path, limits) as served:
        async with AsyncExitStack() as silent:
            for _ in range(limits.max_connections):
                await silent.enter_async_context(RawClient.connect(served.url))
            # Accepted in the order they were opened: this one is over the cap.
            async with RawClient.connect(served.url) as over:
                status, headers, body = await over.answer(within=BOUND)
                assert status == 503
                assert json.loads(body)["error"] == "overloaded"
                assert headers["connection"] == "close"
                assert "retry-after" in headers
        # The silent ones closed, the server takes connections again.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BOUND
        async with httpx.AsyncClient(base_url=served.url) as client:
            while (answer := await client.post(CALLBACK, content=BODY)).status_code == 503:
                assert loop.time() < deadline, "still refused after the others closed"
                await asyncio.sleep(0.05)
            assert answer.status_code == 200
