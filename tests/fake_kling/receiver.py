"""A tiny callback receiver for end-to-end tests: records every POST it gets."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class Received:
    key: str
    at: float  # time.monotonic()
    raw: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def state(self) -> str:
        """The state a callback reports: Kling's ``task_status``, or apimodels' ``data.state``."""
        body = self.json
        return str(body["task_status"] if "task_status" in body else body["data"]["state"])

    @property
    def signed(self) -> bool:
        return "webhook-signature" in self.headers


@dataclass
class Receiver:
    """Answers ``POST /cb/{key}`` with 200, ``/fail/{key}`` with 500, and ``/flaky/{key}``
    with 500 for the first ``FLAKY_FAILURES`` posts of a key, then 200; remembers each."""

    FLAKY_FAILURES = 2
    received: list[Received] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/cb/{key}", self._record, methods=["POST"]),
                Route("/fail/{key}", self._record, methods=["POST"]),
                Route("/flaky/{key}", self._record, methods=["POST"]),
            ]
        )

    def states(self, key: str) -> list[str]:
        return [item.state for item in self.for_key(key)]

    def for_key(self, key: str) -> list[Received]:
        return [item for item in self.received if item.key == key]

    async def _record(self, request: Request) -> Response:
        item = Received(
            key=request.path_params["key"],
            at=time.monotonic(),
            raw=await request.body(),
            headers=dict(request.headers),
        )
        self.received.append(item)
        path = request.url.path
        failing = path.startswith("/fail/") or (
            path.startswith("/flaky/") and len(self.for_key(item.key)) <= self.FLAKY_FAILURES
        )
        return Response(status_code=500 if failing else 200)
