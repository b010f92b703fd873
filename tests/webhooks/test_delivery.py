"""Deliveries on a clock the test moves: signing, the schedule, Retry-After, 3xx, 410, disabling
after a long failure, retry by hand, rotation, the deadline and the capped answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.clock import isoformat
from service.errors import Conflict
from service.webhooks import endpoints as ops
from service.webhooks.requests import EndpointPatch
from service.webhooks.signing import delivery_body
from storage.records import DeliveryStatus, JobStatus
from tests.webhooks.conftest import HookFactory


def verify(secret: str, request: httpx.Request) -> object:
    """The reference library's own check (the timestamp must be within 5 minutes of now)."""
    return Webhook(secret).verify(request.content, dict(request.headers))


def signed_by(secret: str, request: httpx.Request) -> bool:
    """The library's signature for the request's id, timestamp and body, among those sent:
    the check without the library's 5-minute window (for times the test moved on)."""
    moment = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(request.headers["webhook-id"], moment, request.content.decode())
    return expected in request.headers["webhook-signature"].split(" ")


async def test_a_delivery_is_the_signed_event_json_and_verifies(make_hooks: HookFactory) -> None:
    hooks = await make_hooks()
    endpoint = await hooks.add_endpoint(hooks.endpoints.status("ok.example", 204))
    event = await hooks.emit("task.succeeded")
    [delivery] = await hooks.deliveries(endpoint)
    done = await hooks.wait_status(delivery.id, DeliveryStatus.SUCCEEDED)

    [request] = hooks.endpoints.received["ok.example"]
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == event.id
    assert request.headers["webhook-timestamp"] == str(int(hooks.clock().timestamp()))
    payload = verify(endpoint.secret, request)
    assert payload == {
        "id": event.id,
        "type": "task.succeeded",
        "timestamp": isoformat(event.timestamp),
        "data": event.data,
    }
    assert request.content == delivery_body(event)
    assert (done.attempts, done.last_status_code, done.last_error) == (1, 204, None)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(request.content, dict(request.headers))


async def test_failures_follow_the_schedule_then_the_delivery_fails(
    make_hooks: HookFactory,
) -> None:
    hooks = await make_hooks(webhook_retry_schedule="5,300")
    endpoint = await hooks.add_endpoint(hooks.endpoints.status("down.example", 500))
    event = await hooks.emit()
    [delivery] = await hooks.deliveries(endpoint)
    start = hooks.clock()

    first = await hooks.wait_attempts(delivery.id, 1)
    assert first.status == DeliveryStatus.PENDING and first.last_error == "HTTP 500"
    assert first.next_attempt_at is not None
    assert 4.5 <= (first.next_attempt_at - start).total_seconds() <= 5.5  # 10% jitter
    await asyncio.sleep(0.1)
    assert len(hooks.endpoints.received["down.example"]) == 1  # nothing before it is due

    hooks.clock.advance(5.6)
    second = await hooks.wait_attempts(delivery.id, 2)
    assert second.next_attempt_at is not None
    waited = (second.next_attempt_at - hooks.clock()).total_seconds()
    assert 270 <= waited <= 330

    hooks.clock.advance(331)
    failed = await hooks.wait_status(delivery.id, DeliveryStatus.FAILED)
    assert failed.attempts == 3 and failed.last_error == "gave up after 3 attempts; last: HTTP 500"
    job = await hooks.services.storage.get_job(failed.job_id)
    assert job is not None and job.status == JobStatus.FAILED

    sent = hooks.endpoints.received["down.example"]
    assert {r.headers["webhook-id"] for r in sent} == {event.id}  # the same id on every retry
    assert len({r.content for r in sent}) == 1  # the same bytes
    assert len({r.headers["webhook-timestamp"] for r in sent}) == 3  # signed at each attempt
    attempts = await hooks.services.storage.list_delivery_attempts([delivery.id])
    assert [a.status_code for a in attempts] == [500, 500, 500]
    stored = await hooks.services.storage.get_endpoint(endpoint.id)
    assert stored is not None and stored.enabled and stored.failing_since is not None


async def test_retry_after_is_honoured_within_bounds(make_hooks: HookFactory) -> None:
    hooks = await make_hooks(webhook_retry_schedule="5,5")
    slow = await hooks.add_endpoint(
        hooks.endpoints.status("busy.example", 503, **{"Retry-After": "120"})
    )
    huge = await hooks.add_endpoint(
        hooks.endpoints.status("greedy.example", 429, **{"Retry-After": "9999999"})
    )
    await hooks.emit()
    [first] = await hooks.deliveries(slow)
    [second] = await hooks.deliveries(huge)
    start = hooks.clock()
    busy = await hooks.wait_attempts(first.id, 1)
    greedy = await hooks.wait_attempts(second.id, 1)
    assert busy.next_attempt_at is not None and greedy.next_attempt_at is not None
    assert (busy.next_attempt_at - start).total_seconds() == pytest.approx(120, abs=0.5)
    assert (greedy.next_attempt_at - start).total_seconds() == pytest.approx(3600, abs=0.5)


async def test_a_redirect_is_a_failure_and_is_not_followed(make_hooks: HookFactory) -> None:
    hooks = await make_hooks()
    url = hooks.endpoints.status("moved.example", 302, Location="https://elsewhere.example/")
    endpoint = await hooks.add_endpoint(url)
    await hooks.emit()
    [delivery] = await hooks.deliveries(endpoint)
    attempted = await hooks.wait_attempts(delivery.id, 1)
    assert attempted.last_error == "HTTP 302: redirects are not followed"
    assert "elsewhere.example" not in hooks.endpoints.received


async def test_410_disables_the_endpoint_with_an_operator_event(
    make_hooks: HookFactory, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = await make_hooks()
    endpoint = await hooks.add_endpoint(hooks.endpoints.status("gone.example", 410))
    await hooks.emit()
    [delivery] = await hooks.deliveries(endpoint)
    with caplog.at_level(logging.WARNING, logger="service.webhooks"):
        failed = await hooks.wait_status(delivery.id, DeliveryStatus.FAILED)
    assert failed.attempts == 1 and failed.last_error == "HTTP 410; endpoint disabled"

    stored = await hooks.services.storage.get_endpoint(endpoint.id)
    assert stored is not None and not stored.enabled
    assert stored.disabled_reason == "the endpoint answered 410 Gone"
    [event] = await hooks.services.storage.list_endpoint_events(endpoint.id)
    assert (event.type, event.message) == ("webhook.disabled", "the endpoint answered 410 Gone")
    assert [r.action for r in caplog.records if hasattr(r, "action")].count("webhook.disabled") == 1

    await hooks.emit("task.completed")  # a disabled endpoint gets no new deliveries
    assert len(await hooks.deliveries(endpoint)) == 1


async def test_an_endpoint_failing_for_too_long_is_disabled(make_hooks: HookFactory) -> None:
    hooks = await make_hooks(webhook_retry_schedule="40,40,40,40", webhook_disable_after=100)
    endpoint = await hooks.add_endpoint(hooks.endpoints.status("broken.example", 500))
    await hooks.emit()
    [delivery] = await hooks.deliveries(endpoint)
    for attempt in (1, 2, 3):
        await hooks.wait_attempts(delivery.id, attempt)
        stored = await hooks.services.storage.get_endpoint(endpoint.id)
        assert stored is not None and stored.enabled
        hooks.clock.advance(45)
    failed = await hooks.wait_status(delivery.id, DeliveryStatus.FAILED, attempts=4)
    assert failed.last_error == "HTTP 500; endpoint disabled"
    stored = await hooks.services.storage.get_endpoint(endpoint.id)
    assert stored is not None and not stored.enabled
    assert stored.disabled_reason is not None
    assert stored.disabled_reason.startswith("every attempt failed for 135 seconds")


async def test_a_success_ends_the_failing_spell(make_hooks: HookFactory) -> None:
    hooks = await make_hooks(webhook_retry_schedule="10", webhook_disable_after=100)
    endpoint = await hooks.add_endpoint(hooks.endpoints.status("flaky.example", 500, 200))
    await hooks.emit()
    [delivery] = await hooks.deliveries(endpoint)
    await hooks.wait_attempts(delivery.id, 1)
    hooks.clock.advance(11)
    await hooks.wait_status(delivery.id, DeliveryStatus.SUCCEEDED)
    stored = await hooks.services.storage.get_endpoint(endpoint.id)
    assert stored is not None and stored.failing_since is None


async def test_a_failed_delivery_is_retried_by_hand_with_the_same_webhook_id(
    make_hooks: HookFactory,
) -> None:
    hooks = await make_hooks(webhook_retry_schedule="")
    endpoint = await hooks.add_endpoint(hooks.endpoints.status("later.example", 500, 200))
    event = await hooks.emit()
    [delivery] = await hooks.deliveries(endpoint)
    await hooks.wait_status(delivery.id, DeliveryStatus.FAILED)

    hooks.clock.advance(3600)
    retried = await ops.retry_delivery(hooks.services, delivery.id)
    assert retried.status == DeliveryStatus.PENDING
    with pytest.raises(Conflict):
        await ops.retry_delivery(hooks.services, delivery.id)
    done = await hooks.wait_status(delivery.id, DeliveryStatus.SUCCEEDED)
    assert done.attempts == 2
    sent = hooks.endpoints.received["later.example"]
    assert [r.headers["webhook-id"] for r in sent] == [event.id, event.id]
    assert signed_by(endpoint.secret, sent[-1])


async def test_during_a_rotation_both_secrets_sign_until_the_overlap_ends(
    make_hooks: HookFactory,
) -> None:
    hooks = await make_hooks(webhook_secret_overlap=600)
    endpoint = await hooks.add_endpoint(hooks.endpoints.status("rotating.example", 200))
    rotated = await ops.update_endpoint(
        hooks.services, endpoint.id, EndpointPatch(rotate_secret=True)
    )
    assert rotated.secret != endpoint.secret and rotated.secret.startswith("whsec_")
    await hooks.emit()
    [delivery] = await hooks.deliveries(endpoint)
    await hooks.wait_status(delivery.id, DeliveryStatus.SUCCEEDED)
    [during] = hooks.endpoints.received["rotating.example"]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    verify(endpoint.secret, during)  # a receiver that still has the old secret
    verify(rotated.secret, during)  # and one that has the new one

    hooks.clock.advance(601)
    await hooks.emit("task.completed")
    latest = (await hooks.deliveries(endpoint))[0]
    await hooks.wait_status(latest.id, DeliveryStatus.SUCCEEDED)
    after = hooks.endpoints.received["rotating.example"][-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert signed_by(rotated.secret, after) and not signed_by(endpoint.secret, after)
    [operator_event] = await hooks.services.storage.list_endpoint_events(endpoint.id)
    assert operator_event.type == "webhook.secret_rotated"


async def test_the_deadline_covers_slow_headers_and_a_trickling_body(
    make_hooks: HookFactory,
) -> None:
    hooks = await make_hooks(webhook_timeout=0.3)

    async def silent(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        raise AssertionError("never answers")

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"."
            await asyncio.sleep(0.05)

    async def trickling(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle())

    silent_endpoint = await hooks.add_endpoint(hooks.endpoints.answer("silent.example", silent))
    slow_body = await hooks.add_endpoint(hooks.endpoints.answer("trickle.example", trickling))
    await hooks.emit()
    [first] = await hooks.deliveries(silent_endpoint)
    [second] = await hooks.deliveries(slow_body)
    quiet = await hooks.wait_attempts(first.id, 1)
    cut = await hooks.wait_attempts(second.id, 1)
    assert quiet.last_error == "timed out after 0.3s" and quiet.last_status_code is None
    assert cut.last_error == "timed out after 0.3s reading the answer (HTTP 200)"
    assert cut.status == DeliveryStatus.PENDING  # a 2xx that never ends is no success
    [attempt] = await hooks.services.storage.list_delivery_attempts([first.id])
    assert 250 <= attempt.duration_ms < 2000


async def test_the_stored_answer_is_capped(make_hooks: HookFactory) -> None:
    hooks = await make_hooks()

    async def chatty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="é" * 10_000)

    endpoint = await hooks.add_endpoint(hooks.endpoints.answer("chatty.example", chatty))
    await hooks.emit()
    [delivery] = await hooks.deliveries(endpoint)
    await hooks.wait_attempts(delivery.id, 1)
    [attempt] = await hooks.services.storage.list_delivery_attempts([delivery.id])
    assert attempt.response_truncated and attempt.response_body.startswith("éé")
    assert len(attempt.response_body.encode()) <= 4096 + 3


async def test_deliveries_of_an_endpoint_disabled_meanwhile_fail_without_being_sent(
    make_hooks: HookFactory,
) -> None:
    hooks = await make_hooks(webhook_retry_schedule="50")
    endpoint = await hooks.add_endpoint(hooks.endpoints.status("paused.example", 500))
    await hooks.emit()
    [delivery] = await hooks.deliveries(endpoint)
    await hooks.wait_attempts(delivery.id, 1)
    await ops.update_endpoint(hooks.services, endpoint.id, EndpointPatch(enabled=False))
    hooks.clock.advance(60)
    failed = await hooks.wait_status(delivery.id, DeliveryStatus.FAILED)
    assert failed.attempts == 1
    assert failed.last_error == "not sent: the endpoint is disabled (disabled by hand)"
    assert len(hooks.endpoints.received["paused.example"]) == 1
