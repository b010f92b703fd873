"""Read a callback body into a :class:`ProviderTaskState`.

Kling posts the bare task object (§5), but gateways wrap it, sometimes twice (§6):

- ``{"code": 0, "message": .., "data": {task}}`` (Kling's own envelope);
- new-api: ``{"code": "success", "data": {"task_id", "status": "SUCCESS", "data": <envelope>}}``;
- CometAPI: ``{"data": {"status": .., "data": {task} or <envelope>}}``;
- apimodels: ``{"code": 200, "msg": .., "data": {"taskId", "state", "resultUrls", "failMsg"}}``.

We follow the chain of ``data`` keys and read the innermost task object: it is Kling's own
record, while a wrapper has coarser status words. A wrapper is only read when nothing inside it
can be. The task is named by the outermost id, though: a gateway may hand out its own task id
instead of Kling's, and that id, the one its query endpoint takes, is the one omnihook stores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from service.errors import NotificationInvalid
from service.kling.parse import is_object, looks_like_task, number_text, parse_task_data
from service.kling.state import ProviderTaskState

# Deepest known nesting is new-api's: wrapper -> Kling envelope -> task. Bounded so a hostile
# body cannot make us walk forever.
_MAX_DEPTH = 6


def parse_notification(body: bytes) -> ProviderTaskState:
    """A callback body (bare or wrapped, any known shape) -> the task state it reports."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise NotificationInvalid(f"the body is not readable JSON ({exc})") from exc
    if not isinstance(document, Mapping):
        raise NotificationInvalid(f"the body is JSON {type(document).__name__}, not an object")
    return task_from_document(document)


def task_from_document(document: Mapping[str, Any]) -> ProviderTaskState:
    """The innermost readable task of an already decoded document (bare or wrapped)."""
    candidates = _task_candidates(document)
    first_error: NotificationInvalid | None = None
    for depth in range(len(candidates) - 1, -1, -1):
        try:
            state = parse_task_data(candidates[depth])
        except NotificationInvalid as exc:
            first_error = first_error or exc
            continue
        outer_id = _outermost_id(candidates[:depth])
        return replace(state, task_id=outer_id) if outer_id else state
    if first_error is not None:
        raise first_error
    raise NotificationInvalid(_why_no_task(document))


def _task_candidates(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every object along the ``data`` chain that looks like a task, outermost first."""
    found: list[Mapping[str, Any]] = []
    node: Any = document
    for _ in range(_MAX_DEPTH):
        if not is_object(node):
            break
        if looks_like_task(node):
            found.append(node)
        node = node.get("data")
    return found


def _outermost_id(wrappers: list[Mapping[str, Any]]) -> str | None:
    """The id of the outermost wrapper that names one (a gateway's own task id)."""
    for wrapper in wrappers:
        for key in ("task_id", "taskId", "id"):
            value = number_text(wrapper.get(key))
            if value and value.strip():
                return value.strip()
    return None


def _why_no_task(document: Mapping[str, Any]) -> str:
    code = document.get("code")
    message = document.get("message") or document.get("msg")
    if isinstance(code, int) and not isinstance(code, bool) and code not in (0, 200):
        return f"an error answer (code {code}: {str(message)[:200]}), not a task notification"
    return "no task object found (expected task_id/task_status, id/status or taskId/state)"
