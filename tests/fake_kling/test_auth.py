"""Authentication like kling-api.md §2: API key, access/secret-key JWT, and open access."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from service.fake_kling import FakeKlingConfig, create_fake_kling_app

from .helpers import BASE, CREATE, body

ACCESS_KEY = "AK-test"
SECRET_KEY = "sk-test-secret-0123456789-0123456789"
API_KEY = "kling-api-key-123"


def kling_jwt(
    *, issuer: str = ACCESS_KEY, secret: str = SECRET_KEY, exp_in: int = 1800, nbf_in: int = -5
) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "exp": now + exp_in, "nbf": now + nbf_in}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})


@pytest.fixture
async def anon() -> AsyncIterator[httpx.AsyncClient]:
    """A client without default credentials, against an app with both kinds configured."""
    config = FakeKlingConfig(api_key=API_KEY, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    app = create_fake_kling_app(config)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
    ):
        yield client


async def create(client: httpx.AsyncClient, authorization: str | None) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return await client.post(CREATE, json=body(), headers=headers)


async def test_api_key_accepted(anon: httpx.AsyncClient) -> None:
    assert (await create(anon, f"Bearer {API_KEY}")).status_code == 200


async def test_valid_jwt_accepted_on_every_endpoint(anon: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {kling_jwt()}"}
    created = await anon.post(CREATE, json=body(), headers=headers)
    assert created.status_code == 200
    task_id = created.json()["data"]["task_id"]
    assert (await anon.get(f"{CREATE}/{task_id}", headers=headers)).status_code == 200
    assert (await anon.get(CREATE, headers=headers)).status_code == 200


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, 1001),
        ("", 1001),
        ("Basic abc", 1002),
        ("Bearer", 1002),
        ("Bearer wrong-key", 1000),
        (f"Bearer {kling_jwt(exp_in=-10, nbf_in=-100)}", 1004),
        (f"Bearer {kling_jwt(nbf_in=600)}", 1003),
        (f"Bearer {kling_jwt(secret='another-secret-0123456789-01234567')}", 1000),
        (f"Bearer {kling_jwt(issuer='someone-else')}", 1000),
    ],
    ids=[
        "missing",
        "empty",
        "not-bearer",
        "no-token",
        "wrong-key",
        "expired",
        "not-yet-valid",
        "bad-signature",
        "wrong-issuer",
    ],
)
async def test_refusals(anon: httpx.AsyncClient, authorization: str | None, code: int) -> None:
    response = await create(anon, authorization)
    assert response.status_code == 401
    payload = response.json()
    assert payload["code"] == code
    assert set(payload) == {"code", "message", "request_id"}


async def test_queries_need_auth_too(anon: httpx.AsyncClient) -> None:
    assert (await anon.get(CREATE)).json()["code"] == 1001
    assert (await anon.get(f"{CREATE}/1")).json()["code"] == 1001


async def test_open_access_takes_any_bearer_but_not_none(client: httpx.AsyncClient) -> None:
    assert (
        await client.post(CREATE, json=body(), headers={"Authorization": "Bearer x"})
    ).status_code == 200
    response = await client.post(CREATE, json=body(), headers={"Authorization": ""})
    assert (response.status_code, response.json()["code"]) == (401, 1001)


def test_config_repr_hides_secrets() -> None:
    config = FakeKlingConfig(
        api_key=API_KEY,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        webhook_secret="whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI=",
    )
    text = repr(config)
    for secret in (API_KEY, ACCESS_KEY, SECRET_KEY, "dGVzdHNl"):
        assert secret not in text
    assert "step_seconds=1.0" in text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"access_key": "a"},
        {"step_seconds": -1},
        {"max_concurrent": -1},
        {"profile": "nope"},
        {"webhook_secret": "plain"},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FakeKlingConfig(**kwargs)  # type: ignore[arg-type]
