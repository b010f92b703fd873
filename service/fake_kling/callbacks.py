"""Delivering status callbacks: POSTs, optionally signed (Standard Webhooks), optionally retried.

How a profile calls back is a :class:`CallbackStyle`: Kling sends one attempt per state, signed
when the account has a webhook secret; apimodels sends one final callback, unsigned, and retries
it until it is answered 200. A task's directives can withhold or spoil the signature
(:class:`Signing`).

Failures are recorded on the task and logged, never raised: a receiver that is down, slow or
wrong must not disturb the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from .store import CallbackRecord, SimTask, now_ms

logger = logging.getLogger(__name__)

USER_AGENT = "omnihook-fake-kling/1"
MAX_RETRY_DELAY = 60.0

#: Renders the callback body for a task's current state; ``None`` means "no callback".
CallbackRenderer = Callable[[SimTask], dict[str, Any] | None]


@dataclass(frozen=True)
class CallbackStyle:
    """How one API shape calls back."""

    render: CallbackRenderer
    signed: bool = True  # signs when the simulator has a webhook secret
    retry_until_ok: bool = False  # retries an attempt not answered 200, within a time bound
    # directive -> why it has no meaning for this shape (the create is refused)
    unsupported: Mapping[str, str] = field(default_factory=dict)
    # whether the shape's answers have a place for watermark URLs (watermark_info.enabled)
    watermarks: bool = True


class Signing(StrEnum):
    AS_CONFIGURED = "as-configured"  # signed when a webhook secret is configured
    NONE = "none"  # [sim:unsigned]
    WRONG = "wrong"  # [sim:badsig]: signed with a secret nobody has


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a callback not answered 200: doubling delays, until ``window`` seconds are spent."""

    window: float
    first_delay: float

    def delays(self) -> list[float]:
        spent, delay, planned = 0.0, self.first_delay, []
        while delay > 0 and spent + delay <= self.window:
            planned.append(delay)
            spent += delay
            delay = min(delay * 2, MAX_RETRY_DELAY)
        return planned


@dataclass(frozen=True)
class Callback:
    """One notification about one state: the body is frozen when the state changes."""

    state: str
    body: dict[str, Any]
    webhook_id: str
    signing: Signing = Signing.AS_CONFIGURED

    @classmethod
    def about(
        cls, state: str, body: dict[str, Any], signing: Signing = Signing.AS_CONFIGURED
    ) -> Callback:
        return cls(state=state, body=body, webhook_id=f"msg_{uuid.uuid4().hex}", signing=signing)


class CallbackSender:
    """POSTs callbacks with a shared client; signs them when a webhook secret is configured."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        webhook_secret: str | None,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = client
        self._signer = Webhook(webhook_secret) if webhook_secret is not None else None
        self._wrong = Webhook("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
        self._retry_delays = retry.delays() if retry is not None else []

    async def deliver(
        self, task: SimTask, callback: Callback, *, copies: int = 1, delay: float = 0.0
    ) -> None:
        """Send ``callback`` ``copies`` times after ``delay`` seconds, each retried while the
        policy allows and the receiver does not answer 200."""
        if task.callback_url is None:
            return
        if delay > 0:
            await asyncio.sleep(delay)
        for _ in range(copies):
            record = await self._post(task.callback_url, callback)
            task.callbacks.append(record)
            for wait in self._retry_delays:
                if record.status_code == 200:
                    break
                await asyncio.sleep(wait)
                record = await self._post(task.callback_url, callback)
                task.callbacks.append(record)

    def _signer_for(self, signing: Signing) -> Webhook | None:
        if signing is Signing.WRONG:
            return self._wrong
        return self._signer if signing is Signing.AS_CONFIGURED else None

    async def _post(self, url: str, callback: Callback) -> CallbackRecord:
        body = json.dumps(callback.body, separators=(",", ":"), ensure_ascii=False)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        signer = self._signer_for(callback.signing)
        if signer is not None:
            sent_at = datetime.now(tz=UTC)
            headers["webhook-id"] = callback.webhook_id
            headers["webhook-timestamp"] = str(int(sent_at.timestamp()))
            headers["webhook-signature"] = signer.sign(callback.webhook_id, sent_at, body)
        started = now_ms()
        try:
            response = await self._client.post(url, content=body.encode(), headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            logger.warning(
                "callback for task %s (%s) to %s failed: %s",
                _task_ref(callback.body),
                callback.state,
                _origin(url),
                error,
                extra={"action": "fake_kling.callback.failed"},
            )
            return CallbackRecord(started, callback.state, url, callback.webhook_id, error=error)
        if response.status_code != 200:
            logger.warning(
                "callback for task %s (%s) to %s answered HTTP %d",
                _task_ref(callback.body),
                callback.state,
                _origin(url),
                response.status_code,
                extra={"action": "fake_kling.callback.refused"},
            )
        else:
            logger.debug(
                "callback for task %s (%s) delivered",
                _task_ref(callback.body),
                callback.state,
                extra={"action": "fake_kling.callback.delivered"},
            )
        return CallbackRecord(
            started, callback.state, url, callback.webhook_id, status_code=response.status_code
        )


def _task_ref(body: dict[str, Any]) -> Any:
    data = body.get("data")
    return body.get("task_id") or (data.get("taskId") if isinstance(data, dict) else None)


def _origin(url: str) -> str:
    # callback paths carry a per-task secret token: keep them out of logs
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/..."
