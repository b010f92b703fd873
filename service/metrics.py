"""Prometheus metrics of one app instance (its own registry, not the process-global one), and
of the worker of its process (:func:`worker_exposition`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.worker_health import WorkerHealth


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


class WorkerCollector(Collector):
    """What a worker's health says, read at each scrape."""

    def __init__(self, health: WorkerHealth) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "omnihook_worker_up",
            "1 while this process's worker can run, 0 when it cannot (/readyz says why)",
        )
        up.add_metric([], 1.0 if self._health.up else 0.0)
        yield up
        restarts = CounterMetricFamily(
            "omnihook_worker_loop_restarts",
            "Restarts of a worker loop after it failed, by loop (lease, renew, reconcile)",
            labels=["loop"],
        )
        for name, loop in self._health.loops.items():
            restarts.add_metric([name], float(loop.restarts))
        yield restarts


def worker_exposition(health: WorkerHealth | None) -> bytes:
    """The worker's metrics in the text exposition; nothing for a process without a worker."""
    if health is None:
        return b""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(health))
    return generate_latest(registry)
