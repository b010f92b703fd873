"""Where omnihook may connect to: http(s) URLs whose host reaches public addresses only.

One guard for every outgoing connection a URL from outside chooses: video downloads (the
provider's URLs) and webhook deliveries (the URLs users register). Two layers. :func:`check_url`
refuses what needs no network to refuse (other schemes, credentials in the URL where they are
not wanted, literal private addresses in any spelling, names of this machine or of a cloud's
metadata service), so the common mistakes fail early with a clear reason. The decisive layer is
:class:`~service.egress.backend.GuardedBackend`, the network backend of the guarded clients: it
resolves the host once, refuses the connection unless every address is public, and then connects
to one of those very addresses. A DNS answer that changes between the check and the connection
(rebinding) therefore cannot steer a request to a private address. It sits below the HTTP layer,
so the ``Host`` header and the TLS server name stay the URL's host name, and each redirect hop,
which opens its own connection, is checked the same way.

What counts as private (:func:`refusal_reason`): loopback, private networks, link-local,
carrier-grade NAT (100.64.0.0/10), multicast, unspecified, reserved and other non-global ranges;
the cloud metadata addresses (some of them public, like Azure's 168.63.129.16); and an IPv6
address that carries one of those IPv4 addresses (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``). ``OMNIHOOK_ALLOW_PRIVATE_NETWORKS`` lifts the address
rules (local development, tests, the demo); the scheme and credential rules stay.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

import httpx

from service.errors import DownloadError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOW_HINT = "(OMNIHOOK_ALLOW_PRIVATE_NETWORKS=true allows it)"
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# instance metadata services: they hand out credentials to whoever asks from inside
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure IMDS, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "168.63.129.16",  # Azure wire server (a public address)
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "metadata.azure.com"}
)


class DestinationRefused(DownloadError):
    """The destination is private, reserved or not http(s): never fetched, never retried.
    (A download error by origin; webhook deliveries raise it too and report its message.)"""


def display_url(url: httpx.URL | str) -> str:
    """The URL without credentials, query and fragment: signed parameters stay out of messages."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except httpx.InvalidURL:
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def refusal_reason(address: Address) -> str | None:
    """Why omnihook must not connect to ``address`` (None: a public unicast address)."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded, form = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal_reason(embedded)
            return None if inner is None else f"the {form} form of {embedded}: {inner}"
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "carrier-grade NAT"),
        (address.is_reserved, "reserved"),
        (address.is_private, "a private network"),
        (not address.is_global, "not globally routable"),
    )
    return next((reason for matched, reason in checks if matched), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, str]:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    return None, ""


def is_private(address: Address) -> bool:
    """Anything but a globally routable unicast address (see :func:`refusal_reason`)."""
    return refusal_reason(address) is not None


def parse_address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%")[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return None


def parse_host_address(host: str) -> Address | None:
    """A host that is an address in any spelling a resolver accepts: ``127.0.0.1``, ``::1``,
    and the legacy IPv4 forms ``2130706433``, ``0x7f.1``, ``0177.0.0.1``..."""
    address = parse_address(host)
    if address is not None or not host or not all(c in "0123456789abcdefx." for c in host):
        return address
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_url(
    url: httpx.URL | str,
    *,
    allow_private: bool,
    allow_credentials: bool = True,
    purpose: str = "download from",
) -> httpx.URL:
    """The parsed URL if it may be reached, as far as can be told without resolving its host.

    ``purpose`` completes "refusing to ..." in messages; ``allow_credentials=False`` refuses a
    user or password in the URL (webhook endpoints: they would travel to every redirect and
    log line, and a secret belongs in the signing secret)."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except httpx.InvalidURL as exc:
        raise DestinationRefused(f"invalid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DestinationRefused(
            f"refusing to {purpose} {display_url(parsed)}: only http(s) URLs are allowed"
        )
    if not allow_credentials and parsed.userinfo:
        raise DestinationRefused(
            f"refusing to {purpose} {display_url(parsed)}: the URL holds credentials "
            "(user:password@); remove them"
        )
    if allow_private:
        return parsed
    host = parsed.host.lower().rstrip(".")
    address = parse_host_address(host)
    reason = None if address is None else refusal_reason(address)
    if address is not None and reason is not None:
        raise DestinationRefused(
            f"refusing to {purpose} {host}: {address} is a private or reserved address "
            f"({reason}) " + ALLOW_HINT
        )
    if host == "localhost" or host.endswith(".localhost"):
        raise DestinationRefused(
            f"refusing to {purpose} {host}: it names this machine, a private or reserved "
            "address " + ALLOW_HINT
        )
    if host in METADATA_NAMES:
        raise DestinationRefused(
            f"refusing to {purpose} {host}: it names a cloud metadata service, a private or "
            "reserved address " + ALLOW_HINT
        )
    return parsed


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, in its order, without repeats."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
