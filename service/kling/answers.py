"""Reading the provider's HTTP answers: success data, or the error they mean (kling-api.md §4).

Decisions are made on the envelope's ``code``, never on the HTTP status alone (§4: a 429 is both
"retry later" and "account blocked"). An answer without a readable code is a proxy's or a
gateway's own: its HTTP status then stands in for the code (:func:`refusal_by_status`).

A 5xx without a readable code, or a body that cannot be read at all, is :class:`AnswerLost`: the
request may have reached the provider, so a create must not be sent blindly again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import httpx

from service.errors import (
    NotificationInvalid,
    ProviderAuthError,
    ProviderRejected,
    ProviderRetryable,
)
from service.kling.notification import task_from_document
from service.kling.state import ProviderTaskState
from service.retry_after import parse_retry_after

RATE_LIMITED = frozenset({1302, 1303, 429})  # 429: a gateway's own "too many requests"
RETRYABLE = frozenset({1302, 1303, 5000, 5001, 5002})
CREDENTIALS_REFUSED = frozenset({1000, 1001, 1002})
TOKEN_TIME = frozenset({1003, 1004})  # not yet valid / expired: a fresh JWT may cure it
# The account cannot create now, whatever the request: credentials refused, account abnormal,
# in arrears, resource pack used up. A queued task waits for the operator rather than fail.
ACCOUNT_REFUSED = CREDENTIALS_REFUSED | TOKEN_TIME | frozenset({1100, 1101, 1102})


class NotSent(Exception):
    """No connection was made: the request cannot have reached the provider."""


class AnswerLost(Exception):
    """The request may have reached the provider, but no usable answer came back."""


def decode(response: httpx.Response) -> Any:
    """The JSON document of an answer, or ``None`` when it is not JSON."""
    try:
        return response.json()
    except ValueError:  # not JSON, or not decodable text
        return None


def read_kling(response: httpx.Response) -> Any:
    """Kling's envelope: its ``data`` on code 0; a ProviderError otherwise, or AnswerLost."""
    document = decode(response)
    code = document.get("code") if isinstance(document, Mapping) else None
    if code == "success":  # new-api based gateways (CometAPI) spell success this way
        code = 0
    if not isinstance(code, int) or isinstance(code, bool):
        refusal_by_status(response, document)
    assert isinstance(document, Mapping)
    if code == 0:
        return document.get("data")
    message = str(document.get("message") or document.get("msg") or "")
    request_id = document.get("request_id")
    details: dict[str, Any] = {
        "http_status": response.status_code,
        "request_id": request_id if isinstance(request_id, str) else None,
        "retry_after": parse_retry_after(response.headers.get("Retry-After")),
    }
    if code in RETRYABLE:
        raise ProviderRetryable(code, message, **details)
    if code in CREDENTIALS_REFUSED or code in TOKEN_TIME:
        raise ProviderAuthError(code, message, **details)
    raise ProviderRejected(code, message, **details)


def refusal_by_status(response: httpx.Response, document: Any) -> NoReturn:
    """An answer without a usable code: its HTTP status decides what it means."""
    status = response.status_code
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise ProviderRetryable(429, "HTTP 429", http_status=429, retry_after=retry_after)
    if status in (401, 403):
        # No message: a refusal of credentials is where a gateway might quote the key back.
        raise ProviderAuthError(status, f"HTTP {status}", http_status=status)
    if 400 <= status < 500:
        raise ProviderRejected(
            status, f"HTTP {status}{gateway_message(document)}", http_status=status
        )
    raise AnswerLost(f"HTTP {status} without a readable answer")


def task_state(data: Any) -> ProviderTaskState:
    """The task of a successful answer; an unreadable one counts as a lost answer."""
    if not isinstance(data, Mapping):
        raise AnswerLost("the answer has no task object")
    try:
        # Gateways may wrap the task once more (CometAPI's data.status + data.data).
        return task_from_document(data)
    except NotificationInvalid as exc:
        raise AnswerLost(f"unreadable task in the answer: {exc}") from exc


def gateway_message(document: Any) -> str:
    """A short ``": message"`` from an error body, or nothing.

    Only known message fields are used, never the whole body: an error page might echo our
    request headers, credentials included.
    """
    if not isinstance(document, Mapping):
        return ""
    for key in ("message", "msg", "error"):
        value = document.get(key)
        if isinstance(value, Mapping):  # OpenAI style: {"error": {"message": ...}}
            value = value.get("message")
        if isinstance(value, str) and value:
            return f": {value[:200]}"
    return ""


def describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
