"""A TCP proxy for chaos tests: it forwards bytes to an upstream and, while its faults are on,
cuts, delays or stalls connections at random.

It stands between omnihook and a peer (the simulated provider, the video server, a webhook sink)
and knows nothing of HTTP: a fault lands wherever the bytes happen to be, in a request, a
response or between two requests of one kept-alive connection. Every decision comes from the
``random.Random`` it is given, so a seeded test injects the same kinds of faults each run (their
timing still depends on the machine).

With several upstreams it is a small load balancer: each connection goes to the next upstream
in turn, skipping one that refuses (a killed process), which is how the tests' callbacks and API
calls find a live ``serve`` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

CHUNK = 8192
# A kept-alive connection carries many requests: bytes that come after this long a pause start
# a new exchange, which draws its own fault (a proxy that knew HTTP would draw one per request).
NEW_EXCHANGE_AFTER = 0.05


class Fault(StrEnum):
    CUT = "cut"  # the connection is reset after a random number of bytes
    DELAY = "delay"  # each chunk waits a little before it is forwarded
    STALL = "stall"  # after a random number of bytes nothing moves for seconds, then a reset


@dataclass(frozen=True)
class FaultMix:
    """How likely each fault is, per connection, while faults are on."""

    cut: float = 0.0
    delay: float = 0.0
    stall: float = 0.0
    max_delay: float = 0.2  # seconds, per chunk
    stall_seconds: tuple[float, float] = (1.0, 4.0)
    cut_within: int = 64 * 1024  # a cut or stall starts within this many bytes
    # always, faults on or off: seconds between chunks, so that transfers take long enough for
    # a kill to land in the middle of one
    throttle: float = 0.0


class _Cut(Exception):
    """The plan ends this connection here."""


@dataclass
class _Plan:
    """What happens to one connection's current exchange; ``passed`` counts the connection's
    bytes in both directions."""

    proxy: FaultProxy
    mix: FaultMix
    fault: Fault | None = None
    at: int = 0  # bytes after which a cut or stall happens
    delay: float = 0.0
    stall: float = 0.0
    passed: int = 0
    last: float = float("-inf")  # when the last chunk passed

    async def admit(self, chunk: bytes) -> tuple[bytes, bool]:
        """The part of ``chunk`` to forward, and whether the connection ends after it."""
        loop = asyncio.get_running_loop()
        if loop.time() - self.last > NEW_EXCHANGE_AFTER:
            self.proxy.draw(self)
        if self.mix.throttle:
            await asyncio.sleep(self.mix.throttle)
        if self.fault is Fault.DELAY:
            await asyncio.sleep(self.delay)
        self.last = loop.time()  # the pause that counts is the peer's, not this one
        if self.fault in (Fault.CUT, Fault.STALL) and self.passed + len(chunk) >= self.at:
            keep = chunk[: max(self.at - self.passed, 0)]
            self.passed += len(keep)
            return keep, True
        self.passed += len(chunk)
        return chunk, False


@dataclass
class FaultProxy:
    """``async with FaultProxy("media", [(host, port)], rng, mix) as url: ...``"""

    name: str
    upstreams: list[tuple[str, int]]
    rng: random.Random
    mix: FaultMix = field(default_factory=FaultMix)
    faults_on: bool = False
    injected: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    # client port -> upstream index, for the connections open right now
    open_now: dict[int, int] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _next: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.url

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    def draw(self, plan: _Plan) -> None:
        """The fault of a new exchange on ``plan``'s connection (none while faults are off)."""
        plan.fault = None
        if not self.faults_on:
            return
        mix, roll = self.mix, self.rng.random()
        if roll < mix.cut:
            plan.fault = Fault.CUT
        elif roll < mix.cut + mix.stall:
            plan.fault = Fault.STALL
            plan.stall = self.rng.uniform(*mix.stall_seconds)
        elif roll < mix.cut + mix.stall + mix.delay:
            plan.fault = Fault.DELAY
            plan.delay = self.rng.uniform(0, mix.max_delay)
        plan.at = plan.passed + self.rng.randrange(mix.cut_within)
        if plan.fault is not None:
            self.injected[plan.fault.value] += 1

    async def _open_upstream(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
        for _ in range(len(self.upstreams)):
            index = self._next % len(self.upstreams)
            self._next += 1
            host, port = self.upstreams[index]
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                continue  # a process that is down right now: the next one
            return index, reader, writer
        raise ConnectionRefusedError(f"{self.name}: no upstream accepts")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        client_port: int = writer.get_extra_info("peername")[1]
        self.connections += 1
        try:
            try:
                index, up_reader, up_writer = await self._open_upstream()
            except ConnectionRefusedError:
                writer.transport.abort()
                return
            self.open_now[client_port] = index
            await self._relay(_Plan(self, self.mix), reader, writer, up_reader, up_writer)
        except asyncio.CancelledError:
            # the proxy is closing: this connection simply ends (asyncio's stream server would
            # otherwise log the cancelled handler as an error)
            writer.transport.abort()
        finally:
            self.open_now.pop(client_port, None)
            self._tasks.discard(task)

    async def _relay(
        self,
        plan: _Plan,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        pumps = [
            asyncio.create_task(self._pump(plan, reader, up_writer)),
            asyncio.create_task(self._pump(plan, up_reader, writer)),
        ]
        try:
            # a cut in either direction ends both; a clean end of one waits for the other
            for finished in asyncio.as_completed(pumps):
                try:
                    await finished
                except _Cut:
                    await self._stop(pumps)
                    if plan.fault is Fault.STALL:
                        await asyncio.sleep(plan.stall)  # nothing moves, then the reset
                    break
                except OSError:
                    break
        finally:
            # first the reset (not a polite close: what a cut looks like), then the pumps; the
            # other way round a cancellation while the pumps stop would leave sockets open
            for side in (writer, up_writer):
                side.transport.abort()
            await self._stop(pumps)

    @staticmethod
    async def _stop(pumps: list[asyncio.Task[None]]) -> None:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(
        self, plan: _Plan, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        while chunk := await source.read(CHUNK):
            passed, ends = await plan.admit(chunk)
            if passed:
                sink.write(passed)
                await sink.drain()
            if ends:
                raise _Cut
        if sink.can_write_eof():
            sink.write_eof()  # a half-close is passed on: the other direction goes on
