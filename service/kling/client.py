"""The provider client: create and query Omni Video tasks (kling-api.md §1, §4).

Decisions are made on the envelope's ``code``, never on the HTTP status alone (§4: a 429 is both
"retry later" and "account blocked"). Every httpx exception is translated here.

A create is not idempotent, so one whose answer was lost (timeout or reset after sending, 5xx or
unreadable body) is never sent blindly again: the task is first looked up by its
``external_task_id``; only a "does not exist" answer allows a new create. Without an external id
the outcome stays unknown and :class:`ProviderUnreachable` says so.

A query answers ``None`` when the provider says the task does not exist: code 1203, or HTTP 404
without a Kling envelope (a gateway's own "not found"). 1202 ("invalid method") is a wrong route,
not a missing task, so it stays a :class:`ProviderRejected`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from service.errors import (
    NotificationInvalid,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnreachable,
)
from service.kling.auth import RenewableAuth
from service.kling.notification import task_from_document
from service.kling.state import ProviderTaskState
from service.retry import RetrySchedule
from service.retry_after import parse_retry_after

log = logging.getLogger(__name__)

OMNI_VIDEO_PATH = "/v1/videos/omni-video"
RATE_LIMITED = frozenset({1302, 1303})
RETRYABLE = RATE_LIMITED | {5000, 5001, 5002}
CREDENTIALS_REFUSED = frozenset({1000, 1001, 1002})
TOKEN_TIME = frozenset({1003, 1004})  # not yet valid / expired: a fresh JWT may cure it
TASK_NOT_FOUND = 1203
DEFAULT_RETRY = RetrySchedule.of([1, 2, 4])  # frozen, so one shared default is safe
MAX_INLINE_WAIT = 60.0  # a longer Retry-After is handed to the caller's job scheduler instead


class _NotSent(Exception):
    """No connection was made: the request cannot have reached the provider."""


class _AnswerLost(Exception):
    """The request may have reached the provider, but no usable answer came back."""


class KlingClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        auth: httpx.Auth,
        retry: RetrySchedule = DEFAULT_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http  # owned by the caller, who closes it
        self._base = base_url.rstrip("/")
        self._auth = auth
        self._retry = retry
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"KlingClient({self._base!r})"

    async def create_task(self, body: dict[str, Any]) -> ProviderTaskState:
        """Submit a task; see the module docstring for what happens when the answer is lost."""
        external_id = body.get("external_task_id")
        lookup_ref = external_id if isinstance(external_id, str) and external_id else None
        lookup_first = False  # set once a create may have landed without us hearing of it
        failures = 0
        while True:
            try:
                if lookup_first and lookup_ref is not None:
                    known = await self._lookup(lookup_ref)
                    if known is not None:
                        log.info(
                            "lost create answer: the provider has task %s",
                            known.task_id,
                            extra={"action": "kling.create.found"},
                        )
                        return known
                    lookup_first = False  # the provider never got it: sending again is safe
                data = await self._call("POST", OMNI_VIDEO_PATH, body, action="kling.create")
                return _task_state(data)
            except _AnswerLost as exc:
                if lookup_ref is None:
                    raise ProviderUnreachable(
                        f"create: {exc}; the task may or may not exist and, without an "
                        "external_task_id, cannot be looked up, so it was not sent again"
                    ) from exc
                lookup_first = True
                failure: Exception = exc
            except (_NotSent, ProviderRetryable) as exc:
                failure = exc
            failures += 1
            await self._wait_or_raise(failures, failure, "create", unknown=lookup_first)

    async def query_task(self, task_id_or_external_id: str) -> ProviderTaskState | None:
        """The task as the provider sees it, or ``None`` when it does not exist there."""
        failures = 0
        while True:
            try:
                return await self._query_once(task_id_or_external_id, action="kling.query")
            except (_NotSent, _AnswerLost, ProviderRetryable) as exc:
                failures += 1
                await self._wait_or_raise(failures, exc, "query", unknown=False)

    async def _lookup(self, external_id: str) -> ProviderTaskState | None:
        """Look a possibly created task up; a refusal here leaves the create's outcome unknown."""
        try:
            return await self._query_once(external_id, action="kling.create.lookup")
        except (ProviderAuthError, ProviderRejected) as exc:
            raise ProviderUnreachable(
                f"create: the answer was lost and looking the task up was refused ({exc}); "
                "the task may or may not exist"
            ) from exc

    async def _query_once(self, ref: str, *, action: str) -> ProviderTaskState | None:
        path = f"{OMNI_VIDEO_PATH}/{quote(ref, safe='')}"
        try:
            data = await self._call("GET", path, None, action=action)
        except ProviderRejected as exc:
            if exc.code == TASK_NOT_FOUND or (exc.code == 404 and exc.http_status == 404):
                return None
            raise
        return _task_state(data)

    async def _wait_or_raise(
        self, failures: int, failure: Exception, what: str, *, unknown: bool
    ) -> None:
        """Sleep before the next attempt, or raise the final error when the schedule is spent."""
        delay = self._retry.delay_after(failures)
        retry_after = failure.retry_after if isinstance(failure, ProviderError) else None
        if isinstance(failure, ProviderError) and failure.code in RATE_LIMITED:
            retry_after = max(retry_after or 0.0, 1.0)  # §4: back off at least one second
        if delay is not None and retry_after is not None:
            delay = max(delay, retry_after) if retry_after <= MAX_INLINE_WAIT else None
        if delay is None:
            if isinstance(failure, ProviderRetryable) and not unknown:
                raise failure
            outcome = " (the task may or may not exist)" if unknown else ""
            raise ProviderUnreachable(
                f"{what}: no usable answer after {failures} attempts{outcome}: {failure}"
            ) from failure
        log.warning(
            "kling %s failed (attempt %d), retrying in %.1f s: %s",
            what,
            failures,
            delay,
            failure,
            extra={"action": f"kling.{what}.retry", "attempt": failures},
        )
        await self._sleep(delay)

    async def _call(self, method: str, path: str, body: Any, *, action: str) -> Any:
        """One exchange, plus one more with a fresh token after 1003/1004: the envelope's data."""
        renewed = False
        while True:
            response = await self._send(method, path, body)
            try:
                return _read(response)
            except ProviderAuthError as exc:
                if exc.code in TOKEN_TIME and not renewed and isinstance(self._auth, RenewableAuth):
                    log.info(
                        "provider refused the token (%d), renewing it",
                        exc.code,
                        extra={"action": f"{action}.renew_token"},
                    )
                    self._auth.invalidate()
                    renewed = True
                    continue
                log.error("provider refused our credentials: %s", exc, extra={"action": action})
                raise

    async def _send(self, method: str, path: str, body: Any) -> httpx.Response:
        url = self._base + path
        try:
            return await self._http.request(method, url, json=body, auth=self._auth)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _NotSent(f"cannot connect to {self._base}: {_describe(exc)}") from exc
        except httpx.HTTPError as exc:  # read/write timeouts, resets, protocol errors
            raise _AnswerLost(f"{method} {path}: {_describe(exc)}") from exc
        except httpx.InvalidURL as exc:
            raise ProviderUnreachable(f"invalid provider URL {url!r}: {exc}") from exc


def _read(response: httpx.Response) -> Any:
    """The envelope's ``data`` on code 0; a ProviderError otherwise, or _AnswerLost."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    try:
        document = response.json()
    except ValueError:  # not JSON, or not decodable text
        document = None
    code = document.get("code") if isinstance(document, Mapping) else None
    if code == "success":  # new-api gateways spell success this way
        code = 0
    if not isinstance(code, int) or isinstance(code, bool):
        # No Kling envelope: a proxy's or gateway's own answer. Its HTTP status stands in as code.
        if status == 429:
            raise ProviderRetryable(429, "HTTP 429", http_status=429, retry_after=retry_after)
        if status in (401, 403):
            raise ProviderAuthError(status, f"HTTP {status}", http_status=status)
        if 400 <= status < 500:
            # The body itself is left out: an error page might echo our request headers.
            said = _gateway_message(document)
            raise ProviderRejected(status, f"HTTP {status}{said}", http_status=status)
        raise _AnswerLost(f"HTTP {status} without a readable Kling answer")
    assert isinstance(document, Mapping)
    if code == 0:
        return document.get("data")
    message = str(document.get("message") or document.get("msg") or "")
    request_id = document.get("request_id")
    details: dict[str, Any] = {
        "http_status": status,
        "request_id": request_id if isinstance(request_id, str) else None,
        "retry_after": retry_after,
    }
    if code in RETRYABLE:
        raise ProviderRetryable(code, message, **details)
    if code in CREDENTIALS_REFUSED or code in TOKEN_TIME:
        raise ProviderAuthError(code, message, **details)
    raise ProviderRejected(code, message, **details)


def _task_state(data: Any) -> ProviderTaskState:
    """The task of a code-0 answer; an unreadable one counts as a lost answer."""
    if not isinstance(data, Mapping):
        raise _AnswerLost("the answer has no task object")
    try:
        # Gateways may wrap the task once more (CometAPI's data.status + data.data).
        return task_from_document(data)
    except NotificationInvalid as exc:
        raise _AnswerLost(f"unreadable task in the answer: {exc}") from exc


def _gateway_message(document: Any) -> str:
    if isinstance(document, Mapping):
        for key in ("message", "msg", "error"):
            if isinstance(document.get(key), str) and document[key]:
                return f": {document[key][:200]}"
    return ""


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
