"""Prometheus metrics of one app instance (its own registry, not the process-global one)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "omnihook_http_requests",
            "HTTP requests answered, by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "omnihook_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # (endpoint, status) -> its counter and its histogram: ``labels()`` checks and locks on
        # every call, and the set of endpoints and statuses is small and fixed.
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """One request answered: ``endpoint`` names the route, never the raw path (which holds
        ids and secret callback tokens)."""
        series = self._series.get((endpoint, status))
        if series is None:
            series = (self.requests.labels(endpoint, str(status)), self.latency.labels(endpoint))
            self._series[(endpoint, status)] = series
        requests, latency = series
        requests.inc()
        latency.observe(seconds)


class MetricsMiddleware:
    """Pure ASGI: counts and times every request, labelled by the endpoint that served it."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            endpoint = getattr(scope.get("endpoint"), "__name__", "unmatched")
            self._metrics.observe(endpoint, status, time.perf_counter() - started)
