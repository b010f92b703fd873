"""The address guard: checked on the address actually connected, on every hop.

The guarded transport's network backend is given a fake resolver and a recording backend
underneath (httpcore's mock streams): the tests see which address was connected, with which
``Host`` header and TLS server name, without any network. Real loopback servers show the guard
in the real transport.
"""

from __future__ import annotations

import typing
from pathlib import Path

import httpcore
import httpx
import pytest

from service.egress import DestinationRefused, GuardedBackend, GuardedTransport
from tests.downloads.conftest import SAMPLE, Runner, sha256
from tests.downloads.hostile import HostileServer


def http_answer(status: int = 200, body: bytes = SAMPLE, **headers: str) -> list[bytes]:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Content-Type: video/mp4"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return [("\r\n".join(lines) + "\r\n\r\n").encode() + body]


class RecordingStream(httpcore.AsyncMockStream):
    def __init__(self, buffer: list[bytes], backend: Recorder) -> None:
        super().__init__(buffer)
        self._backend = backend

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._backend.sent.append(buffer)

    async def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self._backend.server_names.append(server_hostname)
        return self


class Recorder(httpcore.AsyncNetworkBackend):
    """Connects nowhere: answers from ``answers[address]`` and records what happened."""

    def __init__(self, answers: dict[str, list[bytes]]) -> None:
        self.answers = answers
        self.connected: list[tuple[str, int]] = []
        self.sent: list[bytes] = []
        self.server_names: list[str | None] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        if host not in self.answers:
            raise httpcore.ConnectError(f"nothing listens on {host}")
        return RecordingStream(list(self.answers[host]), self)

    async def sleep(self, seconds: float) -> None:
        return None


class Resolver:
    """A DNS that answers each name from a list, one answer per lookup (rebinding included)."""

    def __init__(self, **names: list[list[str]]) -> None:
        self.names = {name.replace("_", "."): list(answers) for name, answers in names.items()}
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answers = self.names[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def client(
    resolver: Resolver, recorder: Recorder, *, allow_private: bool = False
) -> httpx.AsyncClient:
    transport = GuardedTransport(allow_private=allow_private, resolver=resolver, inner=recorder)
    return httpx.AsyncClient(transport=transport)


async def test_it_connects_to_the_address_it_checked_not_a_second_answer() -> None:
    # DNS rebinding: public for the check, loopback for anyone who asks again.
    resolver = Resolver(cdn_example_com=[["93.184.216.34"], ["127.0.0.1"]])
    recorder = Recorder({"93.184.216.34": http_answer()})
    async with client(resolver, recorder) as http:
        response = await http.get("http://cdn.example.com/v.mp4")
    assert response.content == SAMPLE
    assert recorder.connected == [("93.184.216.34", 80)]
    assert resolver.lookups == ["cdn.example.com"]  # resolved once, for check and connection
    assert b"\r\nHost: cdn.example.com\r\n" in b"".join(recorder.sent)


async def test_tls_names_the_host_while_connecting_to_the_checked_address() -> None:
    resolver = Resolver(cdn_example_com=[["93.184.216.34"]])
    recorder = Recorder({"93.184.216.34": http_answer()})
    async with client(resolver, recorder) as http:
        await http.get("https://cdn.example.com/v.mp4")
    assert recorder.connected == [("93.184.216.34", 443)]
    assert recorder.server_names == ["cdn.example.com"]


@pytest.mark.parametrize(
    "addresses",
    [["10.1.2.3"], ["93.184.216.34", "127.0.0.1"], ["::1"], ["169.254.169.254"], ["fd00::1"]],
)
async def test_a_name_with_any_private_address_is_refused_without_connecting(
    addresses: list[str],
) -> None:
    resolver = Resolver(cdn_example_com=[addresses])
    recorder = Recorder({})
    async with client(resolver, recorder) as http:
        with pytest.raises(DestinationRefused, match="private or reserved"):
            await http.get("http://cdn.example.com/v.mp4")
    assert recorder.connected == []


async def test_the_next_checked_address_is_tried_when_one_does_not_answer() -> None:
    resolver = Resolver(cdn_example_com=[["93.184.216.34", "93.184.216.35"]])
    recorder = Recorder({"93.184.216.35": http_answer()})
    async with client(resolver, recorder) as http:
        response = await http.get("http://cdn.example.com/v.mp4")
    assert response.status_code == 200
    assert [host for host, port in recorder.connected] == ["93.184.216.34", "93.184.216.35"]


async def test_an_unresolvable_name_is_a_connection_error() -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    transport = GuardedTransport(allow_private=False, resolver=failing, inner=Recorder({}))
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError, match="cannot resolve"):
            await http.get("http://nowhere.example/v.mp4")


async def test_a_redirect_to_a_name_of_a_private_address_is_refused(tmp_path: Path) -> None:
    resolver = Resolver(cdn_example_com=[["93.184.216.34"]], internal_example_com=[["10.0.0.5"]])
    redirect = http_answer(302, b"", Location="http://internal.example.com/secret")
    recorder = Recorder({"93.184.216.34": redirect, "10.0.0.5": http_answer()})
    run = Runner(tmp_path / "media")
    transport = GuardedTransport(allow_private=False, resolver=resolver, inner=recorder)
    with pytest.raises(
        DestinationRefused, match=r"internal\.example\.com: it resolves to 10\.0\.0\.5"
    ):
        await run("http://cdn.example.com/v.mp4", transport=transport, allow_private=False)
    assert recorder.connected == [("93.184.216.34", 80)]
    assert run.stored() == [] and run.leftovers() == []


async def test_a_download_through_the_guard_to_a_public_name(tmp_path: Path) -> None:
    resolver = Resolver(cdn_example_com=[["93.184.216.34"]])
    recorder = Recorder({"93.184.216.34": http_answer(ETag='"x"')})
    run = Runner(tmp_path / "media")
    transport = GuardedTransport(allow_private=False, resolver=resolver, inner=recorder)
    result = await run(
        "https://cdn.example.com/v.mp4?sig=1", transport=transport, allow_private=False
    )
    assert result.sha256 == sha256(SAMPLE)


# --- the real transport against real loopback servers ------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_real_guard_refuses_a_real_loopback_server(
    server: HostileServer, host: str
) -> None:
    url = server.add("/v.mp4", SAMPLE).replace("127.0.0.1", host)
    async with httpx.AsyncClient(transport=GuardedTransport(allow_private=False)) as http:
        with pytest.raises(DestinationRefused):
            await http.get(url)
    assert server.requests == []


async def test_the_real_guard_lets_private_addresses_through_when_allowed(
    server: HostileServer,
) -> None:
    url = server.add("/v.mp4", SAMPLE).replace("127.0.0.1", "localhost")
    async with httpx.AsyncClient(transport=GuardedTransport(allow_private=True)) as http:
        response = await http.get(url)
    assert response.content == SAMPLE


async def test_the_real_guard_checks_the_address_a_name_resolves_to(
    server: HostileServer,
) -> None:
    """Through the public transport and httpcore's own network backend: a public-looking name
    that resolves to loopback is refused before any connection."""
    url = server.add("/v.mp4", SAMPLE).replace("127.0.0.1", "cdn.example.com")
    resolver = Resolver(cdn_example_com=[["127.0.0.1"]])
    transport = GuardedTransport(allow_private=False, resolver=resolver)
    assert isinstance(transport.backend, GuardedBackend)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(DestinationRefused, match=r"it resolves to 127\.0\.0\.1"):
            await http.get(url)
    assert server.requests == [] and resolver.lookups == ["cdn.example.com"]
