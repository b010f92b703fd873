"""new-api gateways (EzModel and others; kling-api.md §6, seeds 001 and 003).

- create: ``POST {base}/v1/videos/omni-video`` (the base ends in ``/kling``), the model under
  ``model``; the answer is an OpenAI-style video object
  ``{"id", "task_id", "object": "video", "model", "created_at"}`` (seconds), no envelope;
- query: ``GET {base}/v1/videos/omni-video/{id}`` →
  ``{"code": "success", "data": {"task_id", "status", "progress", "data": <Kling's answer>}}``;
- errors: ``{"code": "<word>", "message", "data": null}`` with an HTTP status, read by status;
- statuses: new-api's ``NOT_START`` / ``SUBMITTED`` / ``QUEUED`` read as submitted,
  ``IN_PROGRESS`` as processing; ``UNKNOWN`` is no news (:class:`ProviderUnreachable`), so the
  task stays as it is and reconciliation asks again later.

A gateway may hand out its own task id instead of Kling's. The id it answered the create with is
the one its query takes, so that id is the task's ``provider_task_id`` and a query answer is read
under the wrapper's ``task_id`` (:func:`service.kling.notification.task_from_document` names a
wrapped task by its outermost id). Whether such a gateway can find a task by our
``external_task_id`` is undocumented, so a lost create answer is never resolved by looking it up.
The gateway passes ``external_task_id`` on to Kling, which refuses a taken one and the gateway
relays that refusal: sending a create again can only create the task or prove it exists, so the
``submit`` job may do so (with the first create's callback URL, whose callbacks name the task).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from service.errors import ProviderUnreachable
from service.kling.answers import AnswerLost, decode, read_kling, task_state
from service.kling.client import OMNI_VIDEO_PATH, HttpProviderClient
from service.kling.parse import number_text, seconds_to_millis
from service.kling.state import ProviderStatus, ProviderTaskState, normalise_status

# new-api's word for a task whose upstream state it cannot tell right now.
UNKNOWN_STATUS = "UNKNOWN"


class NewApiClient(HttpProviderClient):
    name = "newapi"
    model_field = "model"
    finds_by_external_id = False

    def create_path(self) -> str:
        return OMNI_VIDEO_PATH

    def query_request(self, ref: str) -> tuple[str, dict[str, str] | None]:
        return f"{OMNI_VIDEO_PATH}/{quote(ref, safe='')}", None

    def read(self, response: httpx.Response) -> Any:
        document = decode(response)
        if response.status_code < 300 and _is_video_object(document):
            return document  # the create answer has no envelope
        return read_kling(response)  # "success" envelopes; word codes are read by HTTP status

    def created_state(self, data: Any) -> ProviderTaskState:
        if not _is_video_object(data):
            return task_state(data)  # a gateway that relays Kling's own create answer
        assert isinstance(data, Mapping)
        task_id = number_text(data.get("id")) or number_text(data.get("task_id"))
        if not task_id:
            raise AnswerLost("the create answer names no task id")
        status = data.get("status")
        return ProviderTaskState(
            task_id=task_id,
            status=(normalise_status(status) if isinstance(status, str) else None)
            or ProviderStatus.SUBMITTED,
            created_at_ms=seconds_to_millis(data.get("created_at")),
        )

    def queried_state(self, data: Any) -> ProviderTaskState:
        if _says_unknown(data):
            # new-api lost track of the upstream task for now: that is no news, never a
            # failure; the caller leaves the task as it is and asks again later.
            raise ProviderUnreachable(
                "the new-api gateway reports the task's status as UNKNOWN for now"
            )
        return task_state(data)


def _says_unknown(data: Any) -> bool:
    status = data.get("status") if isinstance(data, Mapping) else None
    return isinstance(status, str) and status.strip().upper() == UNKNOWN_STATUS


def _is_video_object(document: Any) -> bool:
    return (
        isinstance(document, Mapping)
        and "code" not in document
        and (document.get("object") == "video" or ("id" in document and "task_id" in document))
    )
