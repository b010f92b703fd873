"""The SSRF matrix: what an endpoint URL may name, at registration and on the address an
attempt actually connects to (DNS rebinding included), and what the setting allows."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.egress import GuardedTransport, check_url, refusal_reason
from service.errors import InvalidRequest
from service.loopback import serve_on_loopback
from service.webhooks.attempt import post_signed
from service.webhooks.urls import check_endpoint_url

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("10.0.0.1", "a private network"),
    ("172.16.5.4", "a private network"),
    ("192.168.1.1", "a private network"),
    ("fd12:3456::1", "a private network"),
    ("169.254.10.10", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("169.254.169.254", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1: loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254: a cloud metadata"),
    ("64:ff9b::10.0.0.1", "NAT64 form of 10.0.0.1: a private network"),
    ("64:ff9b::7f00:1", "NAT64 form of 127.0.0.1: loopback"),
    ("2002:a00:1::", "6to4 form of 10.0.0.1"),
    ("64:ff9b:1::a00:1", ""),  # local-use NAT64 prefix: not global
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", ""),
]
PUBLIC = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822"]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_private_and_special_addresses_are_refused(address: str, reason: str) -> None:
    found = refusal_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://2130706433/hook", "127.0.0.1"),  # 127.0.0.1 as one number
        ("http://0x7f.1/hook", "127.0.0.1"),
        ("http://0177.0.0.1/hook", "invalid URL"),  # httpx refuses octal outright
        ("http://[::ffff:a00:1]/hook", "10.0.0.1"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata service"),
        ("http://app.localhost/hook", "names this machine"),
        ("https://token@hooks.example.com/", "credentials"),
        ("file:///etc/passwd", "only http(s)"),
    ],
)
async def test_urls_are_refused_at_registration_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await check_endpoint_url(url, allow_private=False)
    [problem] = refused.value.problems
    assert problem.field == "url" and why in problem.message


async def test_a_name_that_resolves_to_a_private_address_is_refused_at_registration() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.9.8.7"] if host == "sneaky.example" else ["93.184.216.34"]

    with pytest.raises(InvalidRequest, match=r"resolves to 10\.9\.8\.7"):
        await check_endpoint_url(
            "https://sneaky.example/hook", allow_private=False, resolver=resolver
        )
    fine = await check_endpoint_url(
        "https://hooks.example/h", allow_private=False, resolver=resolver
    )
    assert fine == "https://hooks.example/h"


async def test_allowing_private_networks_keeps_the_scheme_and_credential_rules() -> None:
    assert await check_endpoint_url("http://127.0.0.1:9/h", allow_private=True)
    with pytest.raises(InvalidRequest, match="credentials"):
        await check_endpoint_url("http://u:p@127.0.0.1/h", allow_private=True)
    # downloads keep their behaviour: provider URLs with credentials are theirs to send
    assert check_url("https://u:p@cdn.example.com/v.mp4", allow_private=False)


async def test_each_attempt_checks_the_address_it_connects_to() -> None:
    """A name that passed registration but now resolves to loopback (rebinding): the attempt
    is refused before anything is sent, and says why."""
    got: list[bytes] = []

    async def hook(request: Request) -> Response:
        got.append(b"request")
        return Response(status_code=200)

    app = Starlette(routes=[Route("/h", hook, methods=["POST"])])

    async with serve_on_loopback(app) as url:
        port = int(url.rsplit(":", 1)[1])

        async def rebinding(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        guarded = GuardedTransport(allow_private=False, resolver=rebinding)
        async with httpx.AsyncClient(transport=guarded) as http:
            result = await post_signed(http, f"http://hooks.example:{port}/h", b"{}", {}, seconds=5)
        assert result.status_code is None and got == []
        assert result.error is not None and "resolves to 127.0.0.1" in result.error
        allowed = GuardedTransport(allow_private=True)
        async with httpx.AsyncClient(transport=allowed) as http:
            ok = await post_signed(http, f"{url}/h", b"{}", {}, seconds=5)
        assert ok.status_code == 200 and ok.succeeded and got == [b"request"]
