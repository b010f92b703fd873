"""The request guard as pure ASGI, with scripted ``receive`` and recorded ``send``: what it times
and what it leaves alone, when it lingers and when it closes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.types import Message, Receive, Scope, Send

from service.api.body_limits import api_body_limit
from service.http.limits import ServerLimits
from service.http.request_guard import RequestGuard

LIMITS = ServerLimits(
    body_idle_timeout=0.2, body_timeout=5.0, linger_bytes=1000, linger_seconds=2.0
)
BOUND = 10.0


class Client:
    """The server's side of one request: the body's messages as scripted, then silence (a
    client that keeps its connection open), and what the app sent."""

    def __init__(self, body: Sequence[bytes]) -> None:
        self.messages: list[Message] = [
            {"type": "http.request", "body": part, "more_body": n < len(body) - 1}
            for n, part in enumerate(body)
        ]
        self.sent: list[Message] = []
        self.reads = 0

    async def receive(self) -> Message:
        self.reads += 1
        if self.messages:
            return self.messages.pop(0)
        await asyncio.Event().wait()  # nothing more comes
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def closes(self) -> bool:
        return (b"connection", b"close") in list(self.sent[0].get("headers", []))


def http_scope(method: str, path: str, *headers: tuple[bytes, bytes]) -> Scope:
    return {"type": "http", "method": method, "path": path, "headers": list(headers)}


async def ok(send: Send, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_once_the_body_is_whole_a_long_wait_for_a_disconnect_is_not_cut() -> None:
    """A streaming answer listens for the client leaving while it streams: that read may
    wait far longer than a body may pause."""
    listened = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["body"] == b"{}"
        waiting = asyncio.ensure_future(receive())
        await asyncio.sleep(LIMITS.body_idle_timeout * 3)
        assert not waiting.done()  # still waiting, not answered "disconnected" by the guard
        waiting.cancel()
        listened.set()
        await ok(send)

    client = Client([b"{}"])
    guard = RequestGuard(app, limits=LIMITS, body_limit=api_body_limit)
    scope = http_scope("POST", "/x", (b"content-length", b"2"))
    await asyncio.wait_for(guard(scope, client.receive, client.send), BOUND)
    assert listened.is_set() and client.status == 200


async def test_a_get_without_a_body_is_not_timed_at_all() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await ok(send)

    client = Client([])
    await RequestGuard(app, limits=LIMITS, body_limit=api_body_limit)(
        http_scope("GET", "/"), client.receive, client.send
    )
    assert client.status == 200 and not client.closes and client.reads == 0


async def test_an_early_answer_reads_the_rest_of_a_small_body_and_keeps_the_connection() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await ok(send, 401)  # without reading the body

    client = Client([b"a" * 100, b"b" * 100])
    scope = http_scope("POST", "/v1/tasks", (b"content-length", b"200"))
    await RequestGuard(app, limits=LIMITS, body_limit=api_body_limit)(
        scope, client.receive, client.send
    )
    assert client.status == 401
    assert client.messages == []  # all of it read first
    assert not client.closes  # the body was read whole: the connection is still usable


async def test_an_early_answer_to_a_large_body_lingers_a_bounded_amount_then_closes() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await ok(send, 404)

    client = Client([b"x" * 600] * 10)  # 6000 bytes, over the 1000 bytes lingered on
    scope = http_scope("POST", "/nowhere", (b"content-length", b"6000"))
    await RequestGuard(app, limits=LIMITS, body_limit=api_body_limit)(
        scope, client.receive, client.send
    )
    assert client.status == 404 and client.closes
    assert 0 < 10 - len(client.messages) <= 3  # read 1000 bytes and a little, not all


async def test_a_client_waiting_for_100_continue_is_not_read_from() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await ok(send, 413)

    client = Client([b"x" * 100])
    scope = http_scope(
        "POST", "/callbacks/kling/t", (b"content-length", b"100"), (b"expect", b"100-continue")
    )
    await RequestGuard(app, limits=LIMITS, body_limit=api_body_limit)(
        scope, client.receive, client.send
    )
    assert client.status == 413 and client.closes and client.reads == 0


async def test_a_body_that_pauses_too_long_is_408_whatever_the_app_answers() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["more_body"] is True
        assert (await receive())["type"] == "http.disconnect"
        await ok(send, 400)  # what the app makes of a client that left

    client = Client([b"x", b"y"])
    client.messages = client.messages[:1]  # the second part never comes
    scope = http_scope("POST", "/callbacks/kling/t", (b"content-length", b"2"))
    await asyncio.wait_for(
        RequestGuard(app, limits=LIMITS, body_limit=api_body_limit)(
            scope, client.receive, client.send
        ),
        BOUND,
    )
    assert client.status == 408 and client.closes
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]


async def test_other_scopes_pass_through_untouched() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    client = Client([])
    lifespan: Scope = {"type": "lifespan"}
    await RequestGuard(app, limits=LIMITS, body_limit=api_body_limit)(
        lifespan, client.receive, client.send
    )
    assert seen == [lifespan]
