"""Making one delivery's next attempt: what a ``delivery`` job does each time it runs.

A delivery is attempted only while it is pending and due (a job that runs early, after its
worker died between recording an attempt and rescheduling, waits for the recorded time), its
endpoint exists and is enabled, and the endpoint has a free slot in this process (else the job
is handed back until its turn: :mod:`service.webhooks.gate`, which also throttles an endpoint
that fails or times out). An attempt still waiting for its answer after
:data:`~service.webhooks.gate.SLOW` seconds gives its worker slot back
(:mod:`service.jobs.slot`): an endpoint that never answers costs its own place, not one of the
worker's slots for a whole timeout. The attempt, the delivery's new
state, the endpoint's health (or its disabling) and the end of the job (done, due again at the
delivery's next attempt, or failed) are recorded in one transaction: one commit per attempt,
and a crash leaves either all of it or none (the job then runs again: same ``webhook-id``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from service.egress import display_url
from service.jobs.outcome import Ended, GiveUp, RetryLater
from service.jobs.slot import stepping_aside_after
from service.services import Services
from service.webhooks import metrics
from service.webhooks.attempt import AttemptResult, post_signed
from service.webhooks.gate import SLOW
from service.webhooks.policy import Decision, decide
from service.webhooks.signing import delivery_body, signature_headers, signing_secrets
from storage.base import JobEnd
from storage.records import (
    AttemptOutcome,
    DeliveryAttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    JobRecord,
    WebhookEndpointRecord,
)

log = logging.getLogger(__name__)

EARLY_TOLERANCE = timedelta(seconds=1)


async def make_attempt(services: Services, job: JobRecord) -> Ended | None:
    """The attempt of the delivery of ``job``, recorded with the job's end (``Ended.RECORDED``).
    None: nothing to attempt, the job is done. Raises RetryLater (a hand-back: not due yet,
    the endpoint busy) or GiveUp (the endpoint is disabled)."""
    storage = services.storage
    parts = await storage.get_delivery_parts(str(job.payload["delivery_id"]))
    if parts is None or parts.delivery.status != DeliveryStatus.PENDING:
        return None  # deleted with its endpoint, or finished already (a repeated job run)
    delivery, endpoint, event = parts.delivery, parts.endpoint, parts.event
    now = services.clock()
    due = delivery.next_attempt_at
    if due is not None and due - now > EARLY_TOLERANCE:
        raise RetryLater("not due yet", delay=(due - now).total_seconds())
    if endpoint is None:
        return None
    if not endpoint.enabled:
        await _not_sent(services, delivery, endpoint)
        raise GiveUp(f"endpoint {endpoint.id} is disabled")
    if event is None:
        return None  # gone with its task (and the delivery with it)
    settings = services.settings
    limit = 1 if endpoint.failing_since else settings.webhook_endpoint_concurrency
    gate = services.endpoint_gate
    body = delivery_body(event)  # before taking one of the endpoint's places: held less long
    async with gate.slot(endpoint.id, limit, retry=delivery.attempts > 0) as entered:
        if not entered:
            metrics.HANDED_BACK.inc()
            raise RetryLater("endpoint busy", delay=gate.turn_delay(endpoint.id, limit))
        now = services.clock()
        headers = signature_headers(event.id, now, body, signing_secrets(endpoint, now))
        with stepping_aside_after(SLOW):  # waiting for a slow endpoint needs no worker slot
            result = await post_signed(
                services.downloads, endpoint.url, body, headers, seconds=settings.webhook_timeout
            )
        gate.settle(endpoint.id, succeeded=result.succeeded)
    _count(result)
    decision = decide(
        delivery,
        endpoint,
        result,
        now=now,
        schedule=services.webhook_retry,
        disable_after=settings.webhook_disable_after,
    )
    return await _record(services, endpoint, decision, job)


async def _record(
    services: Services, endpoint: WebhookEndpointRecord, decision: Decision, job: JobRecord
) -> Ended:
    outcome = decision.outcome
    delivery = outcome.delivery
    succeeded = delivery.status == DeliveryStatus.SUCCEEDED
    job_end = JobEnd.of(
        job,
        now=services.clock(),
        retry_at=delivery.next_attempt_at if decision.retry_in is not None else None,
        error=None if succeeded else delivery.last_error or "failed",
    )
    if await services.storage.record_delivery_attempt(outcome, job_end):
        assert outcome.disable is not None
        reason = "gone" if outcome.attempt.status_code == 410 else "failing"
        metrics.ENDPOINTS_DISABLED.labels(reason).inc()
        log.warning(
            "webhook endpoint %s (%s) disabled: %s",
            endpoint.id,
            display_url(endpoint.url),
            outcome.disable.message,
            extra={"action": "webhook.disabled", "endpoint_id": endpoint.id},
        )
    extra = {"delivery_id": delivery.id, "endpoint_id": endpoint.id, "event_id": delivery.event_id}
    if succeeded:
        metrics.DELIVERIES_FINISHED.labels("succeeded").inc()
        log.info(
            "delivered %s to %s (HTTP %s, attempt %d)",
            delivery.event_id,
            endpoint.id,
            delivery.last_status_code,
            delivery.attempts,
            extra={"action": "delivery.succeeded", **extra},
        )
        return Ended.RECORDED
    if decision.retry_in is not None:
        log.info(
            "delivery %s to %s failed (%s); attempt %d in %.0fs",
            delivery.id,
            endpoint.id,
            delivery.last_error,
            delivery.round_attempts + 1,
            decision.retry_in,
            extra={"action": "delivery.retry", **extra},
        )
        return Ended.RECORDED
    metrics.DELIVERIES_FINISHED.labels("failed").inc()
    log.warning(
        "delivery %s to %s failed: %s",
        delivery.id,
        endpoint.id,
        delivery.last_error,
        extra={"action": "delivery.failed", **extra},
    )
    return Ended.RECORDED


async def _not_sent(
    services: Services, delivery: DeliveryRecord, endpoint: WebhookEndpointRecord
) -> None:
    """A pending delivery of an endpoint disabled meanwhile: failed, with the reason in its
    log, so it can be retried by hand once the endpoint is enabled again."""
    now = services.clock()
    error = f"not sent: the endpoint is disabled ({endpoint.disabled_reason or 'by hand'})"
    note = DeliveryAttemptRecord(delivery.id, attempted_at=now, duration_ms=0, error=error)
    failed = replace(
        delivery,
        status=DeliveryStatus.FAILED,
        last_error=error,
        next_attempt_at=None,
        updated_at=now,
    )
    await services.storage.record_delivery_attempt(
        AttemptOutcome(note, failed, endpoint_failing=endpoint.failing_since is not None)
    )
    metrics.DELIVERIES_FINISHED.labels("failed").inc()


def _count(result: AttemptResult) -> None:
    if result.succeeded:
        kind = "success"
    elif result.status_code is None and result.error and result.error.startswith("timed out"):
        kind = "timeout"
    else:
        kind = "failure"
    metrics.ATTEMPTS.labels(kind).inc()
    metrics.ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
