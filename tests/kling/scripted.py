"""Scripted provider answers for the client tests (httpx.MockTransport; no patching)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from service.retry import RetrySchedule

API_KEY = "sk-test-key-0123456789"
NO_JITTER = RetrySchedule.of([1, 2, 4], jitter=0)

Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers requests with the given steps, in order, and records what was asked."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step(request) if callable(step) else step

    def methods(self) -> list[str]:
        return [request.method for request in self.requests]


class Sleeps(list[float]):
    async def __call__(self, delay: float) -> None:
        self.append(delay)


def lost(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def json_answer(status: int, document: Any) -> httpx.Response:
    return httpx.Response(status, json=document)
