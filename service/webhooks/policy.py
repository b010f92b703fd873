"""What an attempt's result means for its delivery and its endpoint: a pure decision.

- a ``2xx`` answer: the delivery succeeded; the endpoint is healthy again;
- ``410 Gone``: the endpoint asked to be removed: it is disabled and the delivery failed;
- any other failure (another status, ``3xx`` included, no answer, a timeout): the next attempt
  comes after the schedule's delay (``OMNIHOOK_WEBHOOK_RETRY_SCHEDULE``, with jitter), or
  later when the answer carried a ``Retry-After`` (honoured up to :data:`MAX_RETRY_AFTER`);
  once the schedule is exhausted the delivery failed (retry it by hand);
- an endpoint that has failed every attempt for ``OMNIHOOK_WEBHOOK_DISABLE_AFTER`` seconds is
  disabled, with an operator event saying why.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from service.ids import new_id
from service.retry import RetrySchedule
from service.webhooks.attempt import AttemptResult
from storage.records import (
    AttemptOutcome,
    DeliveryAttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointEventRecord,
    WebhookEndpointRecord,
)

MAX_RETRY_AFTER = 3600.0  # seconds: a longer Retry-After is taken as this
WEBHOOK_DISABLED = "webhook.disabled"  # the operator event of an endpoint switched off


@dataclass(frozen=True)
class Decision:
    outcome: AttemptOutcome
    retry_in: float | None  # seconds until the next attempt; None: the delivery is finished


def decide(
    delivery: DeliveryRecord,
    endpoint: WebhookEndpointRecord,
    result: AttemptResult,
    *,
    now: datetime,
    schedule: RetrySchedule,
    disable_after: float,
    rng: random.Random | None = None,
) -> Decision:
    attempt = DeliveryAttemptRecord(
        delivery_id=delivery.id,
        attempted_at=now,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error=result.error,
        response_body=result.response_body,
        response_truncated=result.response_truncated,
    )
    made = replace(
        delivery,
        attempts=delivery.attempts + 1,
        round_attempts=delivery.round_attempts + 1,
        last_status_code=result.status_code,
        last_error=result.error,
        next_attempt_at=None,
        updated_at=now,
    )
    if result.succeeded:
        done = replace(made, status=DeliveryStatus.SUCCEEDED)
        return Decision(AttemptOutcome(attempt, done, endpoint_failing=False), None)
    if result.status_code == 410:
        reason = "the endpoint answered 410 Gone"
        return _disabled(attempt, made, endpoint, reason, now)
    failing_since = endpoint.failing_since or now
    failing_for = (now - failing_since).total_seconds()
    if failing_for >= disable_after:
        reason = (
            f"every attempt failed for {_duration(failing_for)} (since "
            f"{failing_since.isoformat(timespec='seconds')}); last: {result.error}"
        )
        return _disabled(attempt, made, endpoint, reason, now)
    delay = schedule.delay_after(made.round_attempts, rng=rng)
    if delay is None:
        gave_up = replace(
            made,
            status=DeliveryStatus.FAILED,
            last_error=f"gave up after {made.round_attempts} attempts; last: {result.error}",
        )
        return Decision(AttemptOutcome(attempt, gave_up, endpoint_failing=True), None)
    if result.retry_after is not None:
        delay = max(delay, min(result.retry_after, MAX_RETRY_AFTER))
    later = replace(made, next_attempt_at=now + timedelta(seconds=delay))
    return Decision(AttemptOutcome(attempt, later, endpoint_failing=True), delay)


def _disabled(
    attempt: DeliveryAttemptRecord,
    made: DeliveryRecord,
    endpoint: WebhookEndpointRecord,
    reason: str,
    now: datetime,
) -> Decision:
    event = EndpointEventRecord(new_id("wev"), endpoint.id, WEBHOOK_DISABLED, now, reason)
    failed = replace(
        made, status=DeliveryStatus.FAILED, last_error=f"{attempt.error}; endpoint disabled"
    )
    return Decision(AttemptOutcome(attempt, failed, endpoint_failing=True, disable=event), None)


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} seconds"
