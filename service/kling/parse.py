"""Read one provider task object, whatever its shape, into a :class:`ProviderTaskState`.

Three shapes exist (kling-api.md §4-§6) and are told apart by their keys:

- Kling's task object: ``task_id``, ``task_status``, ``task_result.videos[]`` and, for image
  outputs, ``task_result.images[]`` (query and create answers' ``data``, and the bare callback
  body);
- Kling's newer generation (and the console's test callback): ``id``, ``status``, ``outputs[]``
  whose ``type`` is ``video`` or ``image``, ``billing[]``;
- apimodels' task: ``taskId``, ``state``, ``resultUrls[]``, ``failMsg``.

Outputs are numbered the same way in every shape: the videos first, in the provider's order,
then the images, so a video's index never depends on how many images came with it. Each may
carry a ``watermark_url`` (the watermarked copy of a request with ``watermark_info.enabled``).

Final costs: ``final_unit_deduction`` is the task's ``cost`` (units of a resource pack) and
``final_balance_deduction`` its ``balance_deduction``, read wherever they appear (Kling's shape,
which gateways relay inside their wrappers, and the newer generation if it carries them); the
newer generation's ``billing[]`` is kept as given. apimodels' page (seed 002) documents no cost
field, so its shape has none.

Every field but the id and the status is optional; a value of the wrong type is treated as
missing rather than failing the whole notification, because a callback we refuse is lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from service.errors import NotificationInvalid
from service.kling.state import (
    IMAGE,
    VIDEO,
    ProviderStatus,
    ProviderTaskState,
    ProviderVideo,
    normalise_status,
)


def is_object(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """A JSON object: nearly always a ``dict``, tested first; ``isinstance`` on the ``Mapping``
    ABC costs ten times more, and the receiver makes a dozen of these tests per callback."""
    return type(value) is dict or isinstance(value, Mapping)


def looks_like_task(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` carries a task id or status key of one of the known shapes."""
    return bool(
        {"task_id", "task_status", "taskId", "state"} & data.keys()
        or ("id" in data and ("status" in data or "outputs" in data))
    )


def parse_task_data(data: Mapping[str, Any]) -> ProviderTaskState:
    """One task object (any shape) -> our state; ``NotificationInvalid`` when unusable."""
    if not is_object(data):
        raise NotificationInvalid(f"a task must be a JSON object, not {type(data).__name__}")
    if "task_status" in data:
        return _parse_kling(data)
    if "taskId" in data or "state" in data:
        return _parse_apimodels(data)
    if "status" in data:
        return _parse_generation(data)
    if "task_id" in data or "id" in data:
        raise NotificationInvalid("the task has an id but no status")
    raise NotificationInvalid("no task found: neither task_id/task_status nor id/status present")


def _parse_kling(data: Mapping[str, Any]) -> ProviderTaskState:
    task_info = _mapping(data.get("task_info"))
    task_result = _mapping(data.get("task_result"))
    return ProviderTaskState(
        task_id=_task_id(data, "task_id"),
        status=_status(data.get("task_status")),
        status_message=_text(data.get("task_status_msg")) or "",
        external_task_id=_text(task_info.get("external_task_id"))
        or _text(data.get("external_task_id")),
        cost=number_text(data.get("final_unit_deduction")),
        balance_deduction=number_text(data.get("final_balance_deduction")),
        created_at_ms=_millis(data.get("created_at")),
        updated_at_ms=_millis(data.get("updated_at")),
        videos=_outputs(_list(task_result.get("videos")), _list(task_result.get("images"))),
        billing=_billing(data.get("billing")),
    )


def _parse_generation(data: Mapping[str, Any]) -> ProviderTaskState:
    # A gateway wrapper (new-api: task_id + status) may land here when it holds no inner task.
    outputs = [item for item in _list(data.get("outputs")) if is_object(item)]
    videos = [item for item in outputs if item.get("type", VIDEO) == VIDEO]
    images = [item for item in outputs if item.get("type") == IMAGE]
    return ProviderTaskState(
        task_id=_task_id(data, "id", "task_id"),
        status=_status(data.get("status")),
        status_message=_text(data.get("message")) or _text(data.get("fail_reason")) or "",
        external_task_id=_text(data.get("external_id")) or _text(data.get("external_task_id")),
        cost=number_text(data.get("final_unit_deduction")),
        balance_deduction=number_text(data.get("final_balance_deduction")),
        created_at_ms=_millis(data.get("create_time"))
        or seconds_to_millis(data.get("submit_time")),
        updated_at_ms=_millis(data.get("update_time"))
        or seconds_to_millis(data.get("finish_time")),
        videos=_outputs(videos, images),
        billing=_billing(data.get("billing")),
    )


def _parse_apimodels(data: Mapping[str, Any]) -> ProviderTaskState:
    urls = [{"url": url} for url in _list(data.get("resultUrls"))]
    return ProviderTaskState(
        task_id=_task_id(data, "taskId", "task_id"),
        status=_status(data.get("state")),
        status_message=_text(data.get("failMsg")) or "",
        created_at_ms=_millis(data.get("createTime")),
        updated_at_ms=_millis(data.get("completeTime")),
        videos=_outputs(urls, []),
    )


def _outputs(videos: list[Any], images: list[Any]) -> tuple[ProviderVideo, ...]:
    """Videos in the provider's order, then images; ``index`` is the position in that list.

    An entry without a URL is skipped but keeps its position, so an index always names the
    same output in every notification of the task.
    """
    outputs = []
    entries = [(VIDEO, item) for item in videos] + [(IMAGE, item) for item in images]
    for index, (kind, item) in enumerate(entries):
        if not is_object(item):
            continue
        url = _text(item.get("url"))
        if not url:
            continue
        outputs.append(
            ProviderVideo(
                index=index,
                provider_video_id=number_text(item.get("id")),
                url=url,
                duration=number_text(item.get("duration")) if kind == VIDEO else None,
                watermark_url=_text(item.get("watermark_url")),
                kind=kind,
            )
        )
    return tuple(outputs)


def _billing(value: Any) -> tuple[Mapping[str, Any], ...]:
    """``billing[]`` as given: its entries' meaning is not documented, so none is read; an
    entry that is not an object is dropped rather than failing the notification."""
    return tuple(item for item in _list(value) if is_object(item))


def _task_id(data: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = number_text(data.get(key))
        if value and value.strip():
            return value.strip()
    raise NotificationInvalid(f"the task has no {' / '.join(keys)}")


def _status(value: Any) -> ProviderStatus:
    if not isinstance(value, str) or not value.strip():
        raise NotificationInvalid("the task has no status")
    status = normalise_status(value)
    if status is None:
        raise NotificationInvalid(f"unknown task status {value[:40]!r}")
    return status


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if is_object(value) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def number_text(value: Any) -> str | None:
    """A string field that some senders write as a number ("7.2" or 7.2): always a string."""
    if type(value) is str:  # the usual case first
        return value or None
    if isinstance(value, bool):  # bool is an int; never a valid id, cost or duration
        return None
    if isinstance(value, int | float):
        return str(value)
    return _text(value)


def seconds_to_millis(value: Any) -> int | None:
    """A Unix time in seconds (OpenAI-style ``created_at``, new-api's ``submit_time``) in ms."""
    seconds = _millis(value)
    return seconds * 1000 if seconds else None


def _millis(value: Any) -> int | None:
    if type(value) is int:  # the usual case first (a bool's type is bool)
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, int):  # an int subclass; as float it could overflow
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        digits = value.strip()
        return int(digits) if len(digits) <= _MAX_DIGITS else None  # int() refuses 4300+
    return None


_MAX_DIGITS = 20  # a time in milliseconds has 13; more is no time, and int() may refuse it
