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
        return str(self.json["task_status"])


@dataclass
class Receiver:
    """Answers ``POST /cb/{key}`` with 200 (``/fail/{key}`` with 500) and remembers it."""

    received: list[Received] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/cb/{key}", self._record, methods=["POST"]),
                Route("/fail/{key}", self._record, methods=["POST"]),
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
        failing = request.url.path.startswith("/fail/")
        return Response(status_code=500 if failing else 200)
