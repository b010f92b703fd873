"""Standard Webhooks v1 signatures of our deliveries, and the secrets that make them.

A delivery is ``POST``ed with ``webhook-id`` (the event id: the same on every attempt, so a
receiver can deduplicate), ``webhook-timestamp`` (seconds, taken at each attempt) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed by the
endpoint's secret, computed by the ``standardwebhooks`` reference library. While a rotation's
overlap lasts, the replaced secret signs too and both signatures are sent, space-separated: a
receiver that still holds the old secret keeps verifying.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from service.views import event_json
from storage.records import EventRecord, WebhookEndpointRecord

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification asks for 24 to 64


def new_secret() -> str:
    """A fresh ``whsec_`` secret: 256 random bits, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signing_secrets(endpoint: WebhookEndpointRecord, now: datetime) -> list[str]:
    """The secrets that sign at ``now``: the current one, and the replaced one during the
    overlap of a rotation."""
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        found.append(endpoint.previous_secret)
    return found


def delivery_body(event: EventRecord) -> bytes:
    """The event JSON of the contract, as sent. Stored events never change and the encoding
    is fixed, so every attempt of a delivery sends (and signs) the very same bytes."""
    return json.dumps(event_json(event), separators=(",", ":"), ensure_ascii=False).encode()


def signature_headers(
    message_id: str, timestamp: datetime, body: bytes, keys: list[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    # whole seconds in UTC: the library reads the datetime's fields as UTC ones
    moment = timestamp.astimezone(UTC).replace(microsecond=0)
    text = body.decode()
    signatures = [Webhook(key).sign(message_id, moment, text) for key in keys]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
