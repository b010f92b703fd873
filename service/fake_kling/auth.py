"""Who may call the simulated API: the API key and the access/secret-key JWT of kling-api.md §2."""

from __future__ import annotations

import hmac

import jwt

from .config import FakeKlingConfig
from .errors import KlingError


class Authenticator:
    """Checks an ``Authorization`` header value and raises :class:`KlingError` when refused.

    Codes: 1001 header missing or empty, 1002 not a bearer token, 1003 token not yet valid,
    1004 token expired, 1000 anything else that does not match the configured credentials.
    """

    def __init__(self, config: FakeKlingConfig) -> None:
        self._open = config.open_access
        self._api_key = config.api_key
        self._access_key = config.access_key
        self._secret_key = config.secret_key

    def check(self, authorization: str | None) -> None:
        if authorization is None or not authorization.strip():
            raise KlingError(1001)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise KlingError(1002)
        if self._open:
            return
        if self._api_key is not None and hmac.compare_digest(
            token.encode(), self._api_key.encode()
        ):
            return
        if self._secret_key is not None and token.count(".") == 2:
            self._check_jwt(token)
            return
        raise KlingError(1000)

    def _check_jwt(self, token: str) -> None:
        assert self._secret_key is not None
        try:
            jwt.decode(
                token,
                self._secret_key,
                algorithms=["HS256"],
                issuer=self._access_key,
                options={"require": ["iss", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise KlingError(1004) from None
        except jwt.ImmatureSignatureError:
            raise KlingError(1003) from None
        except jwt.InvalidTokenError:
            raise KlingError(1000) from None
