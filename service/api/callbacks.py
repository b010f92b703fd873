"""``POST /callbacks/kling/{token}``: the provider's notifications.

The receiver only checks and stores: the notification and the job that will apply it are
written in one transaction, then 200 is answered. Everything slow (state changes, downloads,
handlers) happens in the worker, so the provider is never kept waiting and nothing is lost if
this process dies right after answering.
"""

from __future__ import annotations

import hashlib
import logging

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from service.api.errors import error_response
from service.api.tasks import services_of
from service.errors import NotificationInvalid
from service.ids import new_id
from service.jobs.kinds import INBOX, new_job
from service.kling.notification import parse_notification
from storage.records import NotificationRecord

log = logging.getLogger(__name__)

MAX_NOTIFICATION_BYTES = 1024 * 1024  # real ones are a few KB
_KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-forwarded-for",
)


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_NOTIFICATION_BYTES:
        raise _TooLarge  # refused before reading a byte
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked bodies have no length: count as they come
        size += len(chunk)
        if size > MAX_NOTIFICATION_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _signature_ok(secrets: list[str], body: bytes, headers: dict[str, str]) -> bool:
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            continue
        return True
    return False


async def receive_notification(request: Request) -> Response:
    services = services_of(request)
    try:
        body = await _read_capped(request)
    except _TooLarge:
        return error_response(
            413, "body_too_large", f"notifications are limited to {MAX_NOTIFICATION_BYTES} bytes"
        )
    except ClientDisconnect:
        return Response(status_code=400)
    token_hash = hashlib.sha256(request.path_params["token"].encode()).hexdigest()
    task = await services.storage.get_task_by_token_hash(token_hash)
    if task is None:
        return error_response(404, "not_found", "unknown callback URL")
    headers = {name: request.headers[name] for name in _KEPT_HEADERS if name in request.headers}
    secret_setting = services.settings.kling_webhook_secret
    verification = "unsigned: no webhook secret configured"
    if secret_setting is not None:
        secrets = [s.strip() for s in secret_setting.get_secret_value().split(",") if s.strip()]
        if not _signature_ok(secrets, body, headers):
            log.warning(
                "refused a notification with a bad signature for %s",
                task.id,
                extra={"action": "callback.bad_signature", "task_id": task.id},
            )
            return error_response(401, "bad_signature", "missing or invalid webhook signature")
        verification = "signature valid"
    try:
        parse_notification(body)
    except NotificationInvalid as exc:
        return error_response(400, "unreadable_notification", str(exc))
    now = services.clock()
    notification = NotificationRecord(
        id=new_id("ntf"),
        task_id=task.id,
        received_at=now,
        headers=headers,
        body=body,
        verification=verification,
    )
    job = new_job(INBOX, {"notification_id": notification.id}, now=now, task_id=task.id)
    await services.storage.record_notification(notification, job)
    services.jobs_ready.set()
    return JSONResponse({"received": True, "notification_id": notification.id})
