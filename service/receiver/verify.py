"""Is a notification authentic? The callback token, and the Standard Webhooks signature.

Two independent checks:

- the **token** in the callback URL is unguessable (256 random bits) and names one task. Only
  its SHA-256 is stored; the lookup is by that hash, and the stored hash is compared again with
  :func:`hmac.compare_digest`, so no answer time depends on how much of a guess was right;
- the **signature** (kling-api.md §5), required once ``OMNIHOOK_KLING_WEBHOOK_SECRET`` is set:
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{raw body}">``, checked by the
  ``standardwebhooks`` reference library on the raw bytes, within ±5 minutes of the timestamp.
  During a rotation Kling sends several space-separated signatures and we may hold several
  secrets (comma-separated): one match of any pair is enough.

How a notification was checked is recorded with it (``NotificationRecord.verification``) as
``"<kind>: <details>"``; the kind (``signed`` or ``unsigned``) decides later whether a final
state it reports may be used as it is or must first be confirmed with the provider.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Mapping

from standardwebhooks.webhooks import (
    EmptyWebhookSecretError,
    Webhook,
    WebhookVerificationError,
)

from service.errors import ConfigurationError

SIGNED = "signed"
UNSIGNED = "unsigned"
UNSIGNED_VERIFICATION = (
    f"{UNSIGNED}: no webhook secret configured; a final state is confirmed with the provider"
)
_LEGACY_SIGNED = "signature valid"  # what the first receiver wrote


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a callback token is stored."""
    # surrogatepass: a path may decode to lone surrogates; they must hash, not raise.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(stored: str, presented: str) -> bool:
    """Constant-time equality of two token hashes."""
    return hmac.compare_digest(stored.encode(), presented.encode())


def is_signed(verification: str | None) -> bool:
    """Whether a stored notification's signature was checked and found valid."""
    if verification is None:
        return False
    return verification == _LEGACY_SIGNED or verification.startswith(f"{SIGNED}:")


class SignatureVerifier:
    """The configured secrets, decoded once; ``verify`` answers which one matched, if any."""

    def __init__(self, secrets: tuple[Webhook, ...]) -> None:
        self._webhooks = secrets

    def __repr__(self) -> str:
        return f"SignatureVerifier({len(self._webhooks)} secrets)"  # never the secrets

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """The verification text when a signature of ``headers`` matches ``body`` under one of
        the secrets and the timestamp is within tolerance; ``None`` otherwise (never raises)."""
        wanted = {
            name: headers[name]
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
            if name in headers
        }
        if len(wanted) < 3:
            return None
        for number, webhook in enumerate(self._webhooks, start=1):
            try:
                webhook.verify(body, wanted, json_parse=False)
            except (WebhookVerificationError, ValueError):
                # ValueError: a malformed signature list, bad base64 (binascii.Error), or a body
                # that is not UTF-8 (the library hashes it as text) — none can be a valid one.
                continue
            return (
                f"{SIGNED}: Standard Webhooks signature valid "
                f"(secret {number} of {len(self._webhooks)}, webhook-id {wanted['webhook-id']})"
            )
        return None


def verifier_for(secret_setting: str) -> SignatureVerifier:
    """The verifier of an ``OMNIHOOK_KLING_WEBHOOK_SECRET`` value (built once per process, in
    :class:`~service.services.Services`); ConfigurationError names a malformed secret."""
    parts = [part.strip() for part in secret_setting.split(",") if part.strip()]
    webhooks = []
    for number, part in enumerate(parts, start=1):
        try:
            webhooks.append(Webhook(part))
        except (EmptyWebhookSecretError, binascii.Error, ValueError) as exc:
            raise ConfigurationError(
                f"OMNIHOOK_KLING_WEBHOOK_SECRET: secret {number} of {len(parts)} is not a "
                "whsec_<base64> value"
            ) from exc
    if not webhooks:
        raise ConfigurationError("OMNIHOOK_KLING_WEBHOOK_SECRET is set but holds no secret")
    return SignatureVerifier(tuple(webhooks))
