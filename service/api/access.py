"""Who may call ``/v1/*``: the bearer of ``OMNIHOOK_API_TOKEN``, or, when no token is set,
clients on loopback only (so a fresh install is never an open API on the internet)."""

from __future__ import annotations

import hmac
import ipaddress
import json

from starlette.types import ASGIApp, Receive, Scope, Send


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ApiAccessMiddleware:
    """Pure ASGI: guards ``/v1/*`` and the dashboard (``/``), which shows the same data."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self._token = token.encode() if token else None

    @staticmethod
    def _guarded(path: str) -> bool:
        return path == "/" or path.startswith("/v1/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, code, message = refusal
        body = json.dumps({"error": code, "message": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        if self._token is None:
            client = scope.get("client")
            if _is_loopback(client[0] if client else None):
                return None
            return (
                403,
                "forbidden",
                "OMNIHOOK_API_TOKEN is not set, so /v1/* answers loopback clients only",
            )
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(
                    credentials.strip(), self._token
                ):
                    return None
        return (
            401,
            "unauthorized",
            "a valid 'Authorization: Bearer <OMNIHOOK_API_TOKEN>' is required",
        )
