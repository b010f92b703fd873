"""How omnihook proves itself to the provider (kling-api.md §2), as ``httpx.Auth`` objects.

- :class:`ApiKeyAuth`: ``Authorization: Bearer <key>`` (gateways, and Kling since mid-2026);
- :class:`JwtAuth`: Kling's access/secret keys, a short-lived HS256 JWT sent as a bearer token.

Neither ever shows a credential in its ``repr``; the client calls :meth:`JwtAuth.invalidate`
when the provider says a token is expired or not yet valid (1003/1004).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import httpx
import jwt

from service.errors import ConfigurationError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from service.settings import Settings

TOKEN_LIFETIME = 1800  # seconds, Kling's documented exp
NOT_BEFORE_SLACK = 5  # nbf = now - 5 s tolerates a provider clock slightly behind ours
RENEW_MARGIN = 300  # a token with less left may expire in flight or in a retry: make a new one


@runtime_checkable
class RenewableAuth(Protocol):
    """An auth whose credential can be forced to renew (after a 1003/1004)."""

    def invalidate(self) -> None: ...


class ApiKeyAuth(httpx.Auth):
    """A fixed bearer key."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ConfigurationError("the Kling API key is empty")
        self._header = f"Bearer {key}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "ApiKeyAuth(key='**********')"


class JwtAuth(httpx.Auth):
    """Kling's access-key/secret-key JWT, cached until less than ``RENEW_MARGIN`` remains."""

    def __init__(
        self, access_key: str, secret_key: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        if not access_key or not secret_key:
            raise ConfigurationError("the Kling access key and secret key must both be set")
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0

    def token(self) -> str:
        """The current token, made anew when missing or close to expiry."""
        now = int(self._clock())
        if self._token is None or self._expires_at - now < RENEW_MARGIN:
            self._expires_at = now + TOKEN_LIFETIME
            self._token = jwt.encode(
                {"iss": self._access_key, "exp": self._expires_at, "nbf": now - NOT_BEFORE_SLACK},
                self._secret_key,
                algorithm="HS256",
                headers={"typ": "JWT"},
            )
        return self._token

    def invalidate(self) -> None:
        """Forget the cached token; the next request gets a fresh one."""
        self._token = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request

    def __repr__(self) -> str:
        return "JwtAuth(access_key='**********', secret_key='**********')"


def auth_from_settings(settings: Settings) -> httpx.Auth:
    """JWT when both access and secret keys are set, else the API key; else ConfigurationError."""
    access_key = _secret(settings.kling_access_key)
    secret_key = _secret(settings.kling_secret_key)
    api_key = _secret(settings.kling_api_key)
    if access_key and secret_key:
        return JwtAuth(access_key, secret_key)
    if api_key:
        return ApiKeyAuth(api_key)
    hint = "set OMNIHOOK_KLING_API_KEY or OMNIHOOK_KLING_ACCESS_KEY and OMNIHOOK_KLING_SECRET_KEY"
    if access_key or secret_key:
        missing = "OMNIHOOK_KLING_SECRET_KEY" if access_key else "OMNIHOOK_KLING_ACCESS_KEY"
        raise ConfigurationError(f"no Kling credentials: {missing} is missing ({hint})")
    raise ConfigurationError(f"no Kling credentials: {hint}")


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value().strip() if value is not None else ""
