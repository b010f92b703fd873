"""What users may ask of endpoints (``POST``/``PATCH /v1/webhooks``), checked field by field.

Every problem is reported at once, with its field, as :class:`InvalidRequest` (422), like a
task submission. The URL's destination is checked separately (:mod:`service.webhooks.urls`),
since that may take a DNS lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.apply import events as ev
from service.errors import InvalidRequest, Problem

#: The event types an endpoint may subscribe to (CONTRACT.md "Events"), or "*" for all.
EVENT_TYPES = (
    ev.TASK_QUEUED,
    ev.TASK_SUBMITTED,
    ev.TASK_PROCESSING,
    ev.TASK_SUCCEEDED,
    ev.TASK_FAILED,
    ev.VIDEO_DOWNLOADED,
    ev.VIDEO_DOWNLOAD_FAILED,
    ev.TASK_COMPLETED,
    ev.TASK_TIMED_OUT,
    ev.BUDGET_THRESHOLD,
)
MAX_URL = 2048
MAX_DESCRIPTION = 500


@dataclass(frozen=True)
class NewEndpoint:
    url: str
    events: list[str]
    description: str


@dataclass(frozen=True)
class EndpointPatch:
    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None
    rotate_secret: bool = False


def parse_new_endpoint(body: Any) -> NewEndpoint:
    problems: list[Problem] = []
    if not isinstance(body, dict):
        raise InvalidRequest([Problem("(body)", "must be a JSON object")])
    _unknown(body, {"url", "events", "description"}, problems)
    url = _url(body.get("url"), problems)
    events = _events(body.get("events", ["*"]), problems)
    description = _description(body.get("description", ""), problems)
    if problems:
        raise InvalidRequest(problems)
    assert url is not None and events is not None and description is not None
    return NewEndpoint(url, events, description)


def parse_patch(body: Any) -> EndpointPatch:
    problems: list[Problem] = []
    if not isinstance(body, dict):
        raise InvalidRequest([Problem("(body)", "must be a JSON object")])
    _unknown(body, {"url", "events", "description", "enabled", "rotate_secret"}, problems)
    url = _url(body["url"], problems) if "url" in body else None
    events = _events(body["events"], problems) if "events" in body else None
    description = _description(body["description"], problems) if "description" in body else None
    enabled = _flag(body, "enabled", problems)
    rotate = _flag(body, "rotate_secret", problems)
    if problems:
        raise InvalidRequest(problems)
    return EndpointPatch(url, events, description, enabled, bool(rotate))


def _unknown(body: dict[str, Any], known: set[str], problems: list[Problem]) -> None:
    for name in sorted(set(body) - known):
        problems.append(Problem(name, f"unknown field; allowed: {', '.join(sorted(known))}"))


def _url(value: Any, problems: list[Problem]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem("url", "required: the endpoint's http(s) URL"))
        return None
    if len(value) > MAX_URL:
        problems.append(Problem("url", f"at most {MAX_URL} characters"))
        return None
    return value.strip()


def _events(value: Any, problems: list[Problem]) -> list[str] | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(Problem("events", 'a non-empty list of event types, or ["*"]'))
        return None
    unknown = [v for v in value if v != "*" and v not in EVENT_TYPES]
    for name in unknown:
        problems.append(
            Problem("events", f"unknown event type {name!r}; known: *, {', '.join(EVENT_TYPES)}")
        )
    if unknown:
        return None
    return ["*"] if "*" in value else list(dict.fromkeys(value))


def _description(value: Any, problems: list[Problem]) -> str | None:
    if not isinstance(value, str):
        problems.append(Problem("description", "must be a string"))
        return None
    if len(value) > MAX_DESCRIPTION:
        problems.append(Problem("description", f"at most {MAX_DESCRIPTION} characters"))
        return None
    return value


def _flag(body: dict[str, Any], name: str, problems: list[Problem]) -> bool | None:
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, bool):
        problems.append(Problem(name, "must be true or false"))
        return None
    return value
