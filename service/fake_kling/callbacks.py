"""Delivering status callbacks: one POST per attempt, optionally signed (Standard Webhooks).

Failures are recorded on the task and logged, never raised: a receiver that is down, slow or
wrong must not disturb the simulator.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from .store import CallbackRecord, SimTask, now_ms

logger = logging.getLogger(__name__)

USER_AGENT = "omnihook-fake-kling/1"


@dataclass(frozen=True)
class Callback:
    """One notification about one state: the body is frozen when the state changes."""

    state: str
    body: dict[str, Any]
    webhook_id: str

    @classmethod
    def about(cls, state: str, body: dict[str, Any]) -> Callback:
        return cls(state=state, body=body, webhook_id=f"msg_{uuid.uuid4().hex}")


class CallbackSender:
    """POSTs callbacks with a shared client; signs them when a webhook secret is configured."""

    def __init__(self, client: httpx.AsyncClient, webhook_secret: str | None) -> None:
        self._client = client
        self._signer = Webhook(webhook_secret) if webhook_secret is not None else None

    async def deliver(
        self, task: SimTask, callback: Callback, *, copies: int = 1, delay: float = 0.0
    ) -> None:
        """Send ``callback`` ``copies`` times (one attempt each) after ``delay`` seconds."""
        if task.callback_url is None:
            return
        if delay > 0:
            await asyncio.sleep(delay)
        for _ in range(copies):
            record = await self._post(task.callback_url, callback)
            task.callbacks.append(record)

    async def _post(self, url: str, callback: Callback) -> CallbackRecord:
        body = json.dumps(callback.body, separators=(",", ":"), ensure_ascii=False)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self._signer is not None:
            sent_at = datetime.now(tz=UTC)
            headers["webhook-id"] = callback.webhook_id
            headers["webhook-timestamp"] = str(int(sent_at.timestamp()))
            headers["webhook-signature"] = self._signer.sign(callback.webhook_id, sent_at, body)
        started = now_ms()
        try:
            response = await self._client.post(url, content=body.encode(), headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            logger.warning(
                "callback for task %s (%s) to %s failed: %s",
                callback.body.get("task_id"),
                callback.state,
                _origin(url),
                error,
                extra={"action": "fake_kling.callback.failed"},
            )
            return CallbackRecord(started, callback.state, url, callback.webhook_id, error=error)
        if response.status_code != 200:
            logger.warning(
                "callback for task %s (%s) to %s answered HTTP %d",
                callback.body.get("task_id"),
                callback.state,
                _origin(url),
                response.status_code,
                extra={"action": "fake_kling.callback.refused"},
            )
        else:
            logger.debug(
                "callback for task %s (%s) delivered",
                callback.body.get("task_id"),
                callback.state,
                extra={"action": "fake_kling.callback.delivered"},
            )
        return CallbackRecord(
            started, callback.state, url, callback.webhook_id, status_code=response.status_code
        )


def _origin(url: str) -> str:
    # callback paths carry a per-task secret token: keep them out of logs
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/..."
