"""Managing endpoints and deliveries: what the API and ``omnihook webhooks`` offer.

Changes of an endpoint are compare-and-set writes (read, change, write if nobody wrote in
between, else again), so a change by hand never undoes what a worker recorded meanwhile (a
failure, a disabling) and the other way round. Every change of state (enabled, disabled, secret
rotated) is also an operator event of the endpoint, listed by ``GET /v1/webhooks/{id}``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from service.egress.guard import Resolver, display_url, system_resolver
from service.errors import Conflict, NotFound, StorageError
from service.ids import new_id
from service.services import Services
from service.webhooks.policy import WEBHOOK_DISABLED
from service.webhooks.requests import EndpointPatch, NewEndpoint
from service.webhooks.signing import new_secret
from service.webhooks.urls import check_endpoint_url
from storage.records import (
    DeliveryRecord,
    EndpointEventRecord,
    WebhookEndpointRecord,
)

log = logging.getLogger(__name__)

WEBHOOK_ENABLED = "webhook.enabled"
WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
_WRITE_ATTEMPTS = 10


async def create_endpoint(
    services: Services, new: NewEndpoint, *, resolver: Resolver = system_resolver
) -> WebhookEndpointRecord:
    """Register an endpoint (its secret is generated here); InvalidRequest for a bad URL."""
    url = await check_endpoint_url(
        new.url, allow_private=services.settings.allow_private_networks, resolver=resolver
    )
    now = services.clock()
    endpoint = WebhookEndpointRecord(
        id=new_id("wh"),
        url=url,
        description=new.description,
        events=new.events,
        enabled=True,
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    await services.storage.create_endpoint(endpoint)
    log.info(
        "webhook endpoint %s added for %s (%s)",
        endpoint.id,
        display_url(url),
        ", ".join(endpoint.events),
        extra={"action": "webhook.created", "endpoint_id": endpoint.id},
    )
    return endpoint


async def get_endpoint(services: Services, endpoint_id: str) -> WebhookEndpointRecord:
    endpoint = await services.storage.get_endpoint(endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    return endpoint


async def update_endpoint(
    services: Services,
    endpoint_id: str,
    patch: EndpointPatch,
    *,
    resolver: Resolver = system_resolver,
) -> WebhookEndpointRecord:
    """Apply a PATCH; answers the endpoint as written (with its new secret after a rotation)."""
    url = None
    if patch.url is not None:
        url = await check_endpoint_url(
            patch.url, allow_private=services.settings.allow_private_networks, resolver=resolver
        )
    for _ in range(_WRITE_ATTEMPTS):
        current = await get_endpoint(services, endpoint_id)
        changed, events = _patched(services, current, patch, url)
        if await services.storage.update_endpoint(changed, events):
            for event in events:
                log.info(
                    "webhook endpoint %s: %s (%s)",
                    endpoint_id,
                    event.type,
                    event.message,
                    extra={"action": event.type, "endpoint_id": endpoint_id},
                )
            return changed
    raise StorageError(f"webhook endpoint {endpoint_id} kept changing; try again")


def _patched(
    services: Services,
    current: WebhookEndpointRecord,
    patch: EndpointPatch,
    url: str | None,
) -> tuple[WebhookEndpointRecord, list[EndpointEventRecord]]:
    now = services.clock()
    endpoint = replace(current, updated_at=now)
    events: list[EndpointEventRecord] = []

    def note(kind: str, message: str) -> None:
        events.append(EndpointEventRecord(new_id("wev"), current.id, kind, now, message))

    if url is not None:
        endpoint.url = url
    if patch.events is not None:
        endpoint.events = patch.events
    if patch.description is not None:
        endpoint.description = patch.description
    if patch.enabled is True and not current.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since = True, None, None
        note(WEBHOOK_ENABLED, "enabled by hand")
    elif patch.enabled is False and current.enabled:
        endpoint.enabled, endpoint.disabled_reason = False, "disabled by hand"
        note(WEBHOOK_DISABLED, "disabled by hand")
    if patch.rotate_secret:
        overlap = services.settings.webhook_secret_overlap
        expires = now + timedelta(seconds=overlap)
        endpoint.previous_secret = current.secret if overlap > 0 else None
        endpoint.previous_secret_expires_at = expires if overlap > 0 else None
        endpoint.secret = new_secret()
        note(
            WEBHOOK_SECRET_ROTATED,
            f"new secret; the previous one signs too until {expires.isoformat(timespec='seconds')}"
            if overlap > 0
            else "new secret; the previous one no longer signs",
        )
    return endpoint, events


async def delete_endpoint(services: Services, endpoint_id: str) -> None:
    if not await services.storage.delete_endpoint(endpoint_id):
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    log.info(
        "webhook endpoint %s removed",
        endpoint_id,
        extra={"action": "webhook.removed", "endpoint_id": endpoint_id},
    )


async def get_delivery(services: Services, delivery_id: str) -> DeliveryRecord:
    delivery = await services.storage.get_delivery(delivery_id)
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id!r}")
    return delivery


async def retry_delivery(services: Services, delivery_id: str) -> DeliveryRecord:
    """Deliver a finished delivery again, now, its schedule from the start, with the same
    ``webhook-id``. NotFound: no such delivery; Conflict: it is still pending."""
    delivery = await get_delivery(services, delivery_id)
    retried = await services.storage.retry_delivery(delivery_id, now=services.clock())
    if retried is None:
        raise Conflict(
            f"delivery {delivery_id} is {delivery.status.value} and its attempts are still "
            "going on; only a finished delivery (failed or succeeded) can be retried"
        )
    services.jobs_ready.set()  # an in-process worker takes it at once
    log.info(
        "delivery %s of %s to %s queued again by hand",
        delivery_id,
        retried.event_id,
        retried.endpoint_id,
        extra={"action": "delivery.requeued", "delivery_id": delivery_id},
    )
    return retried
