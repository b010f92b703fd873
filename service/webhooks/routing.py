"""Which endpoints an event goes to: the one place the endpoints' event filters are matched.

An endpoint gets the events of the types it asked for (``["*"]``: all of them) while it is
enabled, and only the events that happened once it existed, as a Svix user expects: an
endpoint added after an event, but before the worker dispatched it, does not get it.
"""

from __future__ import annotations

from collections.abc import Iterable

from storage.records import EventRecord, WebhookEndpointRecord


def routes_to(endpoint: WebhookEndpointRecord, event: EventRecord) -> bool:
    return (
        endpoint.enabled and endpoint.wants(event.type) and endpoint.created_at <= event.timestamp
    )


def endpoints_for(
    event: EventRecord, endpoints: Iterable[WebhookEndpointRecord]
) -> list[WebhookEndpointRecord]:
    """The endpoints of ``endpoints`` that get ``event``, in the order given."""
    return [endpoint for endpoint in endpoints if routes_to(endpoint, event)]
