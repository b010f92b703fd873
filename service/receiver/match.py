"""Is a notification about the task its URL names? And is it the Kling console's test probe?

A callback URL belongs to one task, so a body that names another task (another provider task
id, or another ``external_task_id``) is refused rather than applied to the wrong task: it is a
misrouted or forged notification, never news about this one.

Gateways wrap Kling's task object and may hand out their own ids (kling-api.md §6), so a body
matches when *any* task id along its chain of ``data`` objects is the one we know the task by.

The console's "send test callback" button posts the newer shape with ``status: submitted``,
``outputs: []`` and an id that is no task of ours (§5). It must not fail, and must change
nothing: it is answered 200 and recorded as a probe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from service.errors import NotificationInvalid
from service.kling.parse import is_object
from service.kling.state import ProviderStatus, ProviderTaskState
from service.receiver.cache import TaskIds
from storage.records import TaskRecord

_ID_KEYS = ("task_id", "taskId", "id")
_EXTERNAL_KEYS = ("external_task_id", "external_id")
_MAX_DEPTH = 6  # as deep as the parser looks

PROBE_OUTCOME = "probe: the Kling console's test callback; nothing changed"


def read_document(body: bytes) -> Mapping[str, Any]:
    """The body as a JSON object, or :class:`NotificationInvalid` saying why it is not one."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, digits
        raise NotificationInvalid(f"the body is not readable JSON ({exc})") from exc
    if not isinstance(document, Mapping):
        raise NotificationInvalid(f"the body is JSON {type(document).__name__}, not an object")
    return document


def _chain(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The document and each nested ``data`` object (outermost first)."""
    found: list[Mapping[str, Any]] = []
    node: Any = document
    for _ in range(_MAX_DEPTH):
        if not is_object(node):
            break
        found.append(node)
        node = node.get("data")
    return found


def _text(value: Any) -> str | None:
    if value is None:  # the usual cases first: a key that is not there, a string
        return None
    if type(value) is str:
        return value.strip() or None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return (value.strip() or None) if isinstance(value, str) else None


def task_ids(document: Mapping[str, Any]) -> frozenset[str]:
    """Every task id the body carries, at any level of its ``data`` chain."""
    return frozenset(
        text for level in _chain(document) for key in _ID_KEYS if (text := _text(level.get(key)))
    )


def external_ids(document: Mapping[str, Any]) -> frozenset[str]:
    """Every ``external_task_id`` the body carries (top level or in ``task_info``)."""
    found = set()
    for level in _chain(document):
        info = level.get("task_info")
        for holder in (level, info if is_object(info) else {}):
            for key in _EXTERNAL_KEYS:
                if text := _text(holder.get(key)):
                    found.add(text)
    return frozenset(found)


def mismatch(task: TaskIds, document: Mapping[str, Any]) -> str | None:
    """Why the body is about another task than ``task``, or ``None`` when it is not."""
    externals = external_ids(document)
    if externals and task.external_task_id not in externals:
        return "the body names another external_task_id than this callback URL's task"
    if task.provider_task_id and task.provider_task_id not in task_ids(document):
        return "the body names another provider task than this callback URL's task"
    return None


def as_this_task(
    task: TaskRecord, state: ProviderTaskState, document: Mapping[str, Any]
) -> ProviderTaskState:
    """``state`` under the id we know the task by, when the body names it only through a
    gateway's wrapper id rather than its innermost (Kling's) one."""
    known = task.provider_task_id
    if known and state.task_id != known and known in task_ids(document):
        return replace(state, task_id=known)
    return state


def is_console_probe(
    task: TaskIds | None, document: Mapping[str, Any], state: ProviderTaskState | None
) -> bool:
    """The console's test body: the newer shape, ``submitted``, no outputs, not our task."""
    if state is None or state.status != ProviderStatus.SUBMITTED:
        return False
    if "task_status" in document or "data" in document:
        return False  # the classic shape or an envelope: real task news
    if document.get("outputs") != [] or "id" not in document:
        return False
    if task is None:
        return True
    ours = {task.provider_task_id, task.id}
    return state.task_id not in ours and task.external_task_id not in external_ids(document)
