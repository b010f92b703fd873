"""Provider clients: create and query Omni Video tasks, whatever the API shape (kling-api.md §1-§6).

:class:`ProviderClient` is what the rest of omnihook uses. :class:`HttpProviderClient` holds the
machinery every shape shares (retries, error translation, lost answers); a shape only says where
requests go and how its answers read: the official API's (also PowerTokens', CometAPI's) and the
gateways' in :mod:`service.kling.gateways`.

Every httpx exception is translated here. Errors (see :mod:`service.kling.answers`):
:class:`ProviderAuthError` (credentials refused), :class:`ProviderRejected` (refused for good),
:class:`ProviderRetryable` (busy; raised once the retry schedule is spent, but at once for a
create the provider refused for want of room, :func:`is_busy`: its task is queued instead),
:class:`ProviderUnreachable` (no usable answer: the outcome is unknown).

A create is not idempotent, so one whose answer was lost (timeout or reset after sending, 5xx or
unreadable body) is never sent blindly again: the task is first looked up by its
``external_task_id``; only a "does not exist" answer allows a new create. Without an external id,
or with an API that cannot look tasks up by it (the gateways), the outcome stays unknown and
:class:`ProviderUnreachable` says so.

Looking a task up by our ``external_task_id`` (:meth:`ProviderClient.find_task`) tries every
form the API documents: for Kling's shape the path form, the ``?external_task_id=`` query form,
then the newest pages of the list matched on ``task_info.external_task_id``. A create sent again
and refused because the external id already exists proves the first one landed:
:class:`TaskExistsUnseen` says so (the task must stay pending and be looked up again).

A query answers ``None`` when the provider says the task does not exist: code 1203, or HTTP 404
without a Kling envelope (a gateway's own "not found"). 1202 ("invalid method") is a wrong route,
not a missing task, so it stays a :class:`ProviderRejected`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, TypeVar

import httpx

from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnreachable,
)
from service.kling.answers import (
    RATE_LIMITED,
    TOKEN_TIME,
    AnswerLost,
    NotSent,
    describe,
)
from service.kling.auth import RenewableAuth
from service.kling.state import ProviderTaskState
from service.retry import RetrySchedule

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# The duplicate refusal of a create (Kling's 1201, or a gateway's relay of it): the message is
# the only thing that tells it from other parameter errors.
_DUPLICATE_EXTERNAL_ID = re.compile(r"external[_ ]?task[_ ]?id.*already exist", re.IGNORECASE)
LIST_PAGE_SIZE = 100
LIST_PAGES = 5  # the newest 500 tasks: a task whose create answer was just lost is among them


class TaskExistsUnseen(ProviderUnreachable):
    """A create sent again was refused because its external id already exists: the first create
    landed, but the provider's id for it is not known yet (look it up again later)."""


def is_busy(error: ProviderError) -> bool:
    """Whether the provider refused a create for want of room (1303: too many tasks at once;
    1302 or a gateway's HTTP 429: too many requests): the task should wait for a slot."""
    return isinstance(error, ProviderRetryable) and error.code in RATE_LIMITED


def refused_as_duplicate(error: ProviderError) -> bool:
    """Whether a refusal says the create's ``external_task_id`` is already taken."""
    return isinstance(error, ProviderRejected) and bool(
        _DUPLICATE_EXTERNAL_ID.search(error.provider_message or "")
    )


OMNI_VIDEO_PATH = "/v1/videos/omni-video"
TASK_NOT_FOUND = 1203
MODEL_FIELDS = ("model_name", "model")
DEFAULT_RETRY = RetrySchedule.of([1, 2, 4])  # frozen, so one shared default is safe
MAX_INLINE_WAIT = 60.0  # a longer Retry-After is handed to the caller's job scheduler instead


class ProviderClient(Protocol):
    """What omnihook asks of a provider, whatever its API shape."""

    @property
    def name(self) -> str:
        """The ``OMNIHOOK_PROVIDER`` value of this API shape."""
        ...

    @property
    def model_field(self) -> str:
        """What the create body calls the model: ``model_name`` or ``model``."""
        ...

    @property
    def names_external_ids(self) -> bool:
        """Whether its answers about a task carry our ``external_task_id`` (``task_info``)."""
        ...

    @property
    def refuses_duplicate_external_ids(self) -> bool:
        """Whether a create with a taken ``external_task_id`` is refused, so sending a create
        whose outcome is unknown again can never pay twice."""
        ...

    async def create_task(self, body: dict[str, Any]) -> ProviderTaskState:
        """Submit a task (see the module docstring for lost answers); raises
        :class:`TaskExistsUnseen` when a create sent again was refused as a duplicate."""
        ...

    async def query_task(self, ref: str) -> ProviderTaskState | None:
        """The task by the id its create answered, or ``None`` when the provider lacks it."""
        ...

    async def find_task(self, external_task_id: str) -> ProviderTaskState | None:
        """The task by our external id; ``None`` when the provider surely does not have it.

        Raises :class:`ProviderUnreachable` when the API cannot tell (no such lookup)."""
        ...


class HttpProviderClient(ABC):
    """Retries, error translation and lost-answer handling, shared by every API shape."""

    name: ClassVar[str]
    model_field: ClassVar[str] = "model_name"
    # Whether the query endpoint takes our external_task_id in place of the provider's id.
    finds_by_external_id: ClassVar[bool] = False
    # Whether its task answers carry our external_task_id (Kling's task_info), so an answer
    # without it is about someone else's task.
    names_external_ids: ClassVar[bool] = True
    # Whether a create whose external_task_id is taken is refused (Kling's rule, §3: unique
    # within the account), so that sending one again can never create a second task.
    refuses_duplicate_external_ids: ClassVar[bool] = True

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
        return f"{type(self).__name__}({self._base!r})"

    # --- what differs between shapes ------------------------------------------------------------

    @abstractmethod
    def create_path(self) -> str:
        """The path (below the base URL) a create is POSTed to."""

    @abstractmethod
    def query_request(self, ref: str) -> tuple[str, dict[str, str] | None]:
        """The path and query parameters of a GET for one task."""

    @abstractmethod
    def read(self, response: httpx.Response) -> Any:
        """A successful answer's data; a ProviderError or AnswerLost otherwise."""

    @abstractmethod
    def created_state(self, data: Any) -> ProviderTaskState:
        """The task a successful create answered (AnswerLost when unreadable)."""

    @abstractmethod
    def queried_state(self, data: Any) -> ProviderTaskState:
        """The task a successful query answered (AnswerLost when unreadable)."""

    def is_missing(self, refusal: ProviderRejected) -> bool:
        """Whether a refused query means "no such task"."""
        return refusal.code == TASK_NOT_FOUND or (refusal.code == refusal.http_status == 404)

    # --- the shared machinery -------------------------------------------------------------------

    async def create_task(self, body: dict[str, Any]) -> ProviderTaskState:
        body = self._with_model_field(body)
        external_id = body.get("external_task_id")
        has_external_id = isinstance(external_id, str) and bool(external_id)
        lookup_ref = external_id if has_external_id and self.finds_by_external_id else None
        lookup_first = False  # set once a create may have landed without us hearing of it
        resent = False  # set once a lookup did not find a create that may have landed
        failures = 0
        while True:
            try:
                if lookup_first and lookup_ref is not None:
                    known = await self._lookup(lookup_ref)
                    if known is not None:
                        log.info(
                            "lost create answer: the provider has task %s",
                            known.task_id,
                            extra={"action": "kling.create.found", "provider": self.name},
                        )
                        return known
                    lookup_first = False  # not found: sending again creates it or is refused
                    resent = True
                data = await self._send_create(body, resent=resent)
                return self.created_state(data)
            except AnswerLost as exc:
                if lookup_ref is None:
                    why = (
                        f"the {self.name} API cannot look tasks up by external_task_id"
                        if has_external_id
                        else "without an external_task_id it cannot be looked up"
                    )
                    raise ProviderUnreachable(
                        f"create: {exc}; the task may or may not exist and {why}, "
                        "so it was not sent again"
                    ) from exc
                lookup_first = True
                failure: Exception = exc
            except ProviderRetryable as exc:
                if is_busy(exc) and not (lookup_first or resent):
                    # Surely not created: the caller queues the task (service.submit.admission)
                    # rather than hold a request or a worker slot waiting for room here.
                    raise
                failure = exc
            except NotSent as exc:
                failure = exc
            failures += 1
            await self._wait_or_raise(failures, failure, "create", unknown=lookup_first)

    async def _send_create(self, body: dict[str, Any], *, resent: bool) -> Any:
        try:
            return await self._call("POST", self.create_path(), body, action="kling.create")
        except ProviderRejected as exc:
            if resent and refused_as_duplicate(exc):
                # The lookup missed it, but the provider has it: the first create landed.
                raise TaskExistsUnseen(
                    f"create: the answer was lost and the task was not found, but sending it "
                    f"again was refused as a duplicate ({exc}): it exists, its id is unknown yet"
                ) from exc
            raise

    async def query_task(self, ref: str) -> ProviderTaskState | None:
        path, params = self.query_request(ref)
        return await self._get(path, params, self.queried_state, action="kling.query")

    async def _get(
        self,
        path: str,
        params: dict[str, str] | None,
        read: Callable[[Any], _T],
        *,
        action: str,
    ) -> _T | None:
        """A GET's answer read by ``read`` (``None`` when the provider lacks the task), tried
        again on the client's schedule while nothing usable comes back."""
        failures = 0
        while True:
            try:
                return await self._get_once(path, params, read, action=action)
            except (NotSent, AnswerLost, ProviderRetryable) as exc:
                failures += 1
                await self._wait_or_raise(failures, exc, "query", unknown=False)

    async def find_task(self, external_task_id: str) -> ProviderTaskState | None:
        if not self.finds_by_external_id:
            raise ProviderUnreachable(
                f"the {self.name} API cannot look tasks up by external_task_id, so whether "
                f"task {external_task_id} exists there is unknown"
            )
        return await self.query_task(external_task_id)

    def _with_model_field(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body with the model under this API's name (a task stored under another
        provider setting may name it differently)."""
        if self.model_field in body:
            return body
        for other in MODEL_FIELDS:
            if other in body:
                renamed = {key: value for key, value in body.items() if key != other}
                return {self.model_field: body[other], **renamed}
        return body

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
        path, params = self.query_request(ref)
        return await self._get_once(path, params, self.queried_state, action=action)

    async def _get_once(
        self,
        path: str,
        params: dict[str, str] | None,
        read: Callable[[Any], _T],
        *,
        action: str,
    ) -> _T | None:
        try:
            data = await self._call("GET", path, None, params=params, action=action)
        except ProviderRejected as exc:
            if self.is_missing(exc):
                return None
            raise
        return read(data)

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
            "%s %s failed (attempt %d), retrying in %.1f s: %s",
            self.name,
            what,
            failures,
            delay,
            failure,
            extra={"action": f"kling.{what}.retry", "attempt": failures, "provider": self.name},
        )
        await self._sleep(delay)

    async def _call(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        action: str,
        params: dict[str, str] | None = None,
    ) -> Any:
        """One exchange, plus one more with a fresh token after 1003/1004: the answer's data."""
        renewed = False
        while True:
            response = await self._send(method, path, body, params)
            try:
                return self.read(response)
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

    async def _send(
        self, method: str, path: str, body: Any, params: dict[str, str] | None
    ) -> httpx.Response:
        url = self._base + path
        try:
            return await self._http.request(method, url, json=body, params=params, auth=self._auth)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"cannot connect to {self._base}: {describe(exc)}") from exc
        except httpx.HTTPError as exc:  # read/write timeouts, resets, protocol errors
            raise AnswerLost(f"{method} {path}: {describe(exc)}") from exc
        except httpx.InvalidURL as exc:
            raise ProviderUnreachable(f"invalid provider URL {url!r}: {exc}") from exc
