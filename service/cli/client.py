"""A small typed client of omnihook's HTTP API, used by the client commands and the demo.

Every failure surfaces as a :class:`ClientError` whose ``str`` is fit to show a user:

    ClientError
    ├── ServiceUnreachable    no HTTP answer at all (refused, timeout, DNS)
    └── ApiError              the service answered with an error status
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import quote

import httpx

from service.errors import OmnihookError

from .model import Event, Task, TaskPage, Video

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class ClientError(OmnihookError):
    """The command could not get what it asked the service for."""


class ServiceUnreachable(ClientError):
    def __init__(self, base_url: str, reason: str) -> None:
        self.base_url = base_url
        super().__init__(
            f"cannot reach the omnihook service at {base_url} ({reason}); is `omnihook serve` "
            "running there? Point --url or OMNIHOOK_URL at it."
        )


class ApiError(ClientError):
    """An error answer: ``code`` and ``message`` from the body, plus its details."""

    def __init__(self, status_code: int, body: Mapping[str, Any] | None, text: str) -> None:
        self.status_code = status_code
        self.body: Mapping[str, Any] = body or {}
        self.code = str(self.body.get("error") or _reason(status_code))
        self.message = str(self.body.get("message") or text.strip()[:200] or self.code)
        raw_problems = self.body.get("problems")
        self.problems: list[tuple[str, str]] = [
            (str(item.get("field", "")), str(item.get("message", "")))
            for item in (raw_problems if isinstance(raw_problems, list) else [])
            if isinstance(item, Mapping)
        ]
        super().__init__(self._headline())

    def _headline(self) -> str:
        message = self.message
        if self.problems and self.problems[0][1] in message:
            # The service's message already spells out the problems listed under it.
            message = f"{len(self.problems)} problem(s) in the request"
        line = f"{self.code} (HTTP {self.status_code}): {message}"
        provider_code = self.body.get("provider_code")
        if provider_code is not None:
            line += f" [provider code {provider_code}: {self.body.get('provider_message', '')}]"
        if self.status_code == 401 and "OMNIHOOK_API_TOKEN" not in line:
            line += " (set OMNIHOOK_API_TOKEN to the service's token)"
        return line

    def details(self) -> list[str]:
        """One line per problem of an invalid request, to print under the headline."""
        return [f"{field or '(body)'}: {message}" for field, message in self.problems]


def _reason(status_code: int) -> str:
    phrase = httpx.codes.get_reason_phrase(status_code)
    return phrase.lower().replace(" ", "_") if phrase else "http_error"


class OmnihookClient:
    """``async with OmnihookClient(url, token=...) as api: await api.get_task(id)``.

    ``transport`` is for tests (``httpx.MockTransport``, ``httpx.ASGITransport``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "omnihook-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, transport=transport, timeout=timeout
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(self, body: Mapping[str, Any]) -> tuple[Task, bool]:
        """Submit a task; the flag is False when the provider's answer to its create was lost
        (202, pending: the outcome is not known yet)."""
        response = await self._request("POST", "/v1/tasks", json=dict(body))
        task = cast(Task, response.json())
        # 202 is also a task queued for a provider slot: that one's create was never sent
        return task, not (response.status_code == 202 and task["status"] == "pending")

    async def get_task(self, task_id: str) -> Task:
        response = await self._request("GET", f"/v1/tasks/{_segment(task_id)}")
        return cast(Task, response.json())

    async def list_tasks(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> TaskPage:
        params = {
            key: str(value)
            for key, value in {"status": status, "limit": limit, "cursor": cursor}.items()
            if value is not None
        }
        response = await self._request("GET", "/v1/tasks", params=params)
        return cast(TaskPage, response.json())

    async def costs(
        self, *, since: str | None = None, until: str | None = None, by: str = "day"
    ) -> dict[str, Any]:
        """``GET /v1/costs``: estimated against billed, grouped, and the budgets."""
        params = {"by": by, **{k: v for k, v in {"since": since, "until": until}.items() if v}}
        response = await self._request("GET", "/v1/costs", params=params)
        return cast(dict[str, Any], response.json())

    async def task_events(self, task_id: str) -> list[Event]:
        response = await self._request("GET", f"/v1/tasks/{_segment(task_id)}/events")
        return cast(list[Event], response.json()["events"])

    async def redownload_video(self, task_id: str, index: int) -> Video:
        """Fetch a failed (or deleted) video again; the video as queued (HTTP 202)."""
        path = f"/v1/tasks/{_segment(task_id)}/videos/{index}/download"
        response = await self._request("POST", path)
        return cast(Video, response.json())

    async def video_chunks(self, task_id: str, index: int) -> AsyncIterator[bytes]:
        """The stored file of one video, streamed."""
        path = f"/v1/tasks/{_segment(task_id)}/videos/{index}"
        try:
            async with self._http.stream("GET", path) as response:
                if response.is_error:
                    await response.aread()
                    raise _api_error(response)
                async for chunk in response.aiter_bytes():
                    yield chunk
        except httpx.TransportError as exc:
            raise ServiceUnreachable(self.base_url, _describe(exc)) from exc

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(self.base_url, _describe(exc)) from exc
        if response.is_error:
            raise _api_error(response)
        try:
            response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, None, "the answer is not JSON") from exc
        return response


def _segment(value: str) -> str:
    # Ids are opaque; an external id may hold "/" or spaces, which must stay one path segment.
    return quote(value, safe="")


def _api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    mapping = body if isinstance(body, Mapping) else None
    return ApiError(response.status_code, mapping, response.text)


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else f"cannot connect: {exc}"
    return str(exc) or type(exc).__name__
