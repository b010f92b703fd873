"""Where an endpoint may point: checked when it is registered or changed (422 with the reason).

The same rules as every outgoing connection (:mod:`service.egress`): http(s)
only, no credentials in the URL, and, unless ``OMNIHOOK_ALLOW_PRIVATE_NETWORKS``, no address
that is loopback, private, link-local, carrier-grade NAT, multicast, reserved, a cloud metadata
service or an IPv6 form of one of those, whether written in the URL or what its name resolves
to now. A name that does not resolve yet is accepted: every attempt checks the address it
actually connects to, so a name that later resolves to a private address is refused then.
"""

from __future__ import annotations

import asyncio

from service.egress.guard import (
    DestinationRefused,
    Resolver,
    check_url,
    parse_host_address,
    refusal_reason,
    system_resolver,
)
from service.errors import InvalidRequest, Problem

RESOLVE_SECONDS = 5.0
_PURPOSE = "deliver webhooks to"


async def check_endpoint_url(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> str:
    """The URL as it will be used; InvalidRequest (field ``url``) with the reason otherwise."""
    try:
        parsed = check_url(
            url, allow_private=allow_private, allow_credentials=False, purpose=_PURPOSE
        )
    except DestinationRefused as exc:
        raise InvalidRequest([Problem("url", str(exc))]) from None
    if allow_private or parse_host_address(parsed.host) is not None:
        return str(parsed)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            names = await resolver(parsed.host, port)
    except (OSError, TimeoutError):
        return str(parsed)  # not resolvable now: the attempts check what it resolves to then
    for name in names:
        address = parse_host_address(name)
        reason = None if address is None else refusal_reason(address)
        if reason is not None:
            raise InvalidRequest(
                [
                    Problem(
                        "url",
                        f"refusing to {_PURPOSE} {parsed.host}: it resolves to {address}, a "
                        f"private or reserved address ({reason}) "
                        "(OMNIHOOK_ALLOW_PRIVATE_NETWORKS=true allows it)",
                    )
                ]
            )
    return str(parsed)
