"""Where a video may be fetched from: http(s) URLs whose host reaches public addresses only.

Two layers. :func:`check_url` refuses what needs no network to refuse (other schemes, literal
private addresses, ``localhost``), so the common mistakes fail early with a clear message. The
decisive layer is :class:`GuardedBackend`, the network backend of the downloads client: it
resolves the host once, refuses the connection unless every address is public, and then
connects to one of those very addresses. A DNS answer that changes between the check and the
connection (rebinding) therefore cannot steer a download to a private address. It sits below
the HTTP layer, so the ``Host`` header and the TLS server name stay the URL's host name, and
each redirect hop, which opens its own connection, is checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import typing
from collections.abc import Awaitable, Callable

import httpcore
import httpx

from service.downloads.stream import LargeReads
from service.errors import DownloadError

log = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_ALLOW_HINT = "(OMNIHOOK_ALLOW_PRIVATE_NETWORKS=true allows it)"


class DestinationRefused(DownloadError):
    """The destination is private, reserved or not http(s): never fetched, never retried."""


def display_url(url: httpx.URL | str) -> str:
    """The URL without credentials, query and fragment: signed parameters stay out of messages."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except httpx.InvalidURL:
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def is_private(address: Address) -> bool:
    """Anything but a globally routable unicast address counts as private."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global
    )


def parse_address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%")[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return None


def check_url(url: httpx.URL | str, *, allow_private: bool) -> httpx.URL:
    """The parsed URL if it may be fetched, as far as can be told without resolving its host."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except httpx.InvalidURL as exc:
        raise DestinationRefused(f"invalid video URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DestinationRefused(
            f"refusing video URL {display_url(parsed)}: only http(s) URLs are fetched"
        )
    if allow_private:
        return parsed
    host = parsed.host.lower().rstrip(".")
    address = parse_address(host)
    if address is not None and is_private(address):
        raise DestinationRefused(
            f"refusing to download from {host}: {address} is a private or reserved address "
            + _ALLOW_HINT
        )
    if host == "localhost" or host.endswith(".localhost"):
        raise DestinationRefused(
            f"refusing to download from {host}: it names this machine, a private or reserved "
            "address " + _ALLOW_HINT
        )
    return parsed


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, in its order, without repeats."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses it resolved and checked itself (see the module docstring);
    its streams read in large blocks (:mod:`service.downloads.stream`)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._allow_private:
            stream = await self._inner.connect_tcp(
                host, port, timeout, local_address=local_address, socket_options=socket_options
            )
            return LargeReads(stream)
        addresses = await self._checked_addresses(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return LargeReads(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # try the next checked address, as a resolver-driven connect would
        assert failure is not None  # _checked_addresses never answers an empty list
        raise failure

    async def _checked_addresses(self, host: str, port: int) -> list[Address]:
        literal = parse_address(host)
        if literal is not None:
            names = [str(literal)]
        else:
            try:
                names = await self._resolver(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = [address for address in map(parse_address, names) if address is not None]
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no usable address")
        for address in addresses:
            if is_private(address):
                log.warning(
                    "refused a connection to %s (%s)",
                    host,
                    address,
                    extra={"action": "download.destination_refused"},
                )
                raise DestinationRefused(
                    f"refusing to download from {host}: it resolves to {address}, a private or "
                    "reserved address " + _ALLOW_HINT
                )
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("videos are never fetched over a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a :class:`GuardedBackend` underneath.

    httpx offers no parameter for the network backend, so the connection pool it built is
    replaced by an equivalent one that uses ours (the attribute has been ``_pool`` since httpx
    0.18; ``tests/downloads/test_destination.py`` fails loudly if that ever changes).
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(
                allow_private=allow_private, resolver=resolver, inner=inner
            ),
        )
