"""``POST /callbacks/kling/{token}``: the provider's notifications.

The receiver only checks and stores: the notification and the job that will apply it are
written in one transaction, then 200 is answered. Everything slow (state changes, downloads,
handlers) happens in the worker, so the provider is never kept waiting and nothing is lost if
this process dies right after answering.

Checks, in order (a refused request stores nothing):

====  ==========================================================================================
413   the body is over 1 MiB (declared or counted while it streams in; never buffered whole)
401   ``OMNIHOOK_KLING_WEBHOOK_SECRET`` is set and no valid signature comes with the body
      (checked before the token, so a forger learns nothing about which tokens exist)
400   the body is not a JSON object
200   the Kling console's test body: a harmless probe, recorded (when the token is a task's)
404   the token belongs to no task
400   the JSON holds no task notification of any known shape
409   the body names another task than the token's (``task_mismatch``)
200   stored (duplicates too); ``{"received": true, "notification_id": ...}``
503   the database is unavailable (any :class:`StorageError`, in the token lookup or the
      write): nothing was stored, the provider should send it again (``Retry-After``)
503   the webhook secret setting is unusable (``not_configured``)
500   anything unexpected: logged with its traceback, answered in the same JSON shape
====  ==========================================================================================

These answers are all made here: :class:`~service.api.callbacks_first.CallbacksFirst` calls
the receiver past the app's exception handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from service.api.errors import error_response, internal_error, storage_unavailable
from service.errors import ConfigurationError, NotificationInvalid, StorageError
from service.ids import new_id
from service.jobs.kinds import INBOX, new_job
from service.kling.notification import task_from_document
from service.kling.state import ProviderTaskState
from service.receiver.cache import TaskIds
from service.receiver.limits import MAX_NOTIFICATION_BYTES, BodyTooLarge, read_capped
from service.receiver.match import PROBE_OUTCOME, is_console_probe, mismatch, read_document
from service.receiver.verify import UNSIGNED_VERIFICATION, same_hash, token_hash
from service.services import Services
from storage.records import NotificationRecord

log = logging.getLogger(__name__)

_KEPT_HEADERS = frozenset(
    {
        b"content-type",
        b"user-agent",
        b"webhook-id",
        b"webhook-timestamp",
        b"webhook-signature",
        b"x-forwarded-for",
    }
)


class CallbackReceiver:
    """The receiver, as a plain ASGI app (the route's endpoint).

    :meth:`answer` is the receiver itself; :class:`service.api.callbacks_first.CallbacksFirst`
    calls it directly for every callback, past the rest of the app's middleware and router.
    So it reads what it needs from the ASGI scope alone: the services from the lifespan's
    state, the token from the path parameters.
    """

    def __init__(self) -> None:
        # The endpoint label of its metrics (MetricsMiddleware names endpoints by ``__name__``)
        self.__name__ = "receive_notification"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.answer(scope, receive)
        await response(scope, receive, send)

    async def answer(self, scope: Scope, receive: Receive) -> Response:
        """The answer to one callback (its notification stored first, when it is one)."""
        services: Services = scope["state"]["services"]
        with services.receiver_load.receiving():
            try:
                return await _receive(scope, receive, services)
            except StorageError as exc:  # nothing stored: the provider should send it again
                log.warning(
                    "refused a notification: storage unavailable (%s)",
                    exc,
                    extra={"action": "callback.storage_unavailable"},
                )
                return storage_unavailable(exc)
            except ConfigurationError as exc:
                return error_response(503, "not_configured", str(exc))
            except Exception:
                # A bug, not an outage. Answered and logged here, as the app's error handling
                # would (this path bypasses it); never the path's token, which is a secret.
                log.exception(
                    "unexpected error while receiving a notification",
                    extra={"action": "callback.unexpected_error"},
                )
                return internal_error()


receive_notification = CallbackReceiver()


async def _receive(scope: Scope, receive: Receive, services: Services) -> Response:
    try:
        body = await read_capped(scope, receive)
    except BodyTooLarge:
        return error_response(
            413, "body_too_large", f"notifications are limited to {MAX_NOTIFICATION_BYTES} bytes"
        )
    except ClientDisconnect:
        return error_response(400, "client_disconnected", "the body was not received whole")
    headers = _kept_headers(scope["headers"])
    verification = _verify(services, body, headers)
    if verification is None:
        log.warning(
            "refused a notification with a missing or bad signature",
            extra={"action": "callback.bad_signature"},
        )
        return error_response(401, "bad_signature", "missing or invalid webhook signature")
    try:
        document = read_document(body)
    except NotificationInvalid as exc:
        return error_response(400, "unreadable_notification", str(exc))
    task = await _task_of(services, scope["path_params"]["token"])
    state, unreadable = _read_state(document)
    if is_console_probe(task, document, state):
        return await _probe(services, task, body, headers, verification)
    if task is None:
        return error_response(404, "not_found", "unknown callback URL")
    if unreadable is not None:
        return error_response(400, "unreadable_notification", str(unreadable))
    why = mismatch(task, document)
    if why is not None:
        log.warning(
            "refused a notification about another task than %s",
            task.id,
            extra={"action": "callback.task_mismatch", "task_id": task.id},
        )
        return error_response(409, "task_mismatch", why)
    notification = await _store(services, task, body, headers, verification)
    return _received(notification.id)


def _kept_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers worth keeping with a notification (the first of each name, as Starlette's
    ``Headers`` reads them), in one pass over the raw ones."""
    kept: dict[str, str] = {}
    for name, value in raw:
        if name in _KEPT_HEADERS:
            kept.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return kept


def _received(notification_id: str) -> Response:
    """``{"received": true, "notification_id": ...}``, spelled directly: ids are plain ASCII
    letters and digits, so no JSON encoder is needed on the receiver's hottest path."""
    body = b'{"received":true,"notification_id":"' + notification_id.encode() + b'"}'
    return Response(body, media_type="application/json")


def _verify(services: Services, body: bytes, headers: Mapping[str, str]) -> str | None:
    """How the notification is authenticated: a verification text, or None (refuse it)."""
    verifier = services.callback_verifier
    if verifier is None:
        return UNSIGNED_VERIFICATION
    return verifier.verify(body, headers)


async def _task_of(services: Services, token: str) -> TaskIds | None:
    presented = token_hash(token)
    cache = services.callback_tokens
    known = cache.get(presented)
    if known is not None:
        return known
    task = await services.storage.get_task_by_token_hash(presented)
    if task is None or not same_hash(task.callback_token_hash, presented):
        return None
    cache.remember(presented, task)
    return task


def _read_state(
    document: Mapping[str, Any],
) -> tuple[ProviderTaskState | None, NotificationInvalid | None]:
    """The task state the document reports, or why it reports none."""
    try:
        return task_from_document(document), None
    except NotificationInvalid as exc:
        return None, exc


async def _probe(
    services: Services,
    task: TaskIds | None,
    body: bytes,
    headers: dict[str, str],
    verification: str,
) -> Response:
    log.info(
        "the Kling console's test callback arrived",
        extra={"action": "callback.probe", "task_id": task.id if task else None},
    )
    notification_id = None
    if task is not None:  # kept, so whoever pressed the button can see it arrived
        stored = await _store(services, task, body, headers, verification, outcome=PROBE_OUTCOME)
        notification_id = stored.id
    return JSONResponse({"received": True, "probe": True, "notification_id": notification_id})


async def _store(
    services: Services,
    task: TaskIds,
    body: bytes,
    headers: dict[str, str],
    verification: str,
    *,
    outcome: str | None = None,
) -> NotificationRecord:
    """The notification and its ``inbox`` job, in one transaction."""
    now = services.clock()
    notification = NotificationRecord(
        id=new_id("ntf"),
        task_id=task.id,
        received_at=now,
        headers=headers,
        body=body,
        outcome=outcome,
        verification=verification,
    )
    job = new_job(INBOX, {"notification_id": notification.id}, now=now, task_id=task.id)
    await services.storage.record_notification(notification, job)
    services.jobs_ready.set()
    return notification
