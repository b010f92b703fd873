"""The guarded network backend: httpcore's public backend interface, around an asyncio one.

It resolves the host once, refuses the connection unless every address is public, and then
connects to one of those very addresses, so a DNS answer that changes between a check and the
connection (rebinding) cannot steer a request to a private address. Below the HTTP layer, the
``Host`` header and the TLS server name stay the URL's host name.
"""

from __future__ import annotations

import logging
import typing

import httpcore

from service.egress.guard import (
    ALLOW_HINT,
    Address,
    DestinationRefused,
    Resolver,
    parse_address,
    parse_host_address,
    refusal_reason,
    system_resolver,
)
from service.egress.stream import AsyncioBackend

log = logging.getLogger(__name__)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses it resolved and checked itself (see the module docstring),
    through :class:`~service.egress.stream.AsyncioBackend` by default."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner or AsyncioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._allow_private:
            return await self._inner.connect_tcp(
                host, port, timeout, local_address=local_address, socket_options=socket_options
            )
        addresses = await self._checked_addresses(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # try the next checked address, as a resolver-driven connect would
        assert failure is not None  # _checked_addresses never answers an empty list
        raise failure

    async def _checked_addresses(self, host: str, port: int) -> list[Address]:
        literal = parse_host_address(host)
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
            reason = refusal_reason(address)
            if reason is not None:
                log.warning(
                    "refused a connection to %s (%s: %s)",
                    host,
                    address,
                    reason,
                    extra={"action": "destination.refused"},
                )
                raise DestinationRefused(
                    f"refusing to connect to {host}: it resolves to {address}, a private or "
                    f"reserved address ({reason}) " + ALLOW_HINT
                )
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("never connecting over a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
