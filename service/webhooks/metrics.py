"""Prometheus metrics of the deliveries this process made (``GET /metrics/webhooks``).

Kept in a registry of their own, process-wide: deliveries are made by the worker, which is
not tied to an app instance (``omnihook serve`` runs it in-process and exposes these; a
standalone ``omnihook worker`` counts them too, for an embedding that scrapes it).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()

ATTEMPTS = Counter(
    "omnihook_webhook_attempts",
    "Delivery attempts made, by result (success, failure, timeout)",
    ["result"],
    registry=REGISTRY,
)
ATTEMPT_SECONDS = Histogram(
    "omnihook_webhook_attempt_duration_seconds",
    "How long a delivery attempt took, answer read included",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERIES_FINISHED = Counter(
    "omnihook_webhook_deliveries_finished",
    "Deliveries that ended, by status (succeeded, failed)",
    ["status"],
    registry=REGISTRY,
)
ENDPOINTS_DISABLED = Counter(
    "omnihook_webhook_endpoints_disabled",
    "Endpoints disabled by omnihook (410 Gone, or failing for too long)",
    ["reason"],
    registry=REGISTRY,
)
HANDED_BACK = Counter(
    "omnihook_webhook_handed_back",
    "Delivery jobs handed back because their endpoint had no free slot",
    registry=REGISTRY,
)
