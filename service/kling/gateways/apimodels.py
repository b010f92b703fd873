"""apimodels (kling-api.md §6, seed 002): its own API in front of Kling.

- create: ``POST {base}/api/v1/video/generations`` with ``model``; the answer is
  ``{"code": 200, "msg": "success", "data": {"taskId", "state": "pending", "model"}}``;
- query: ``GET {base}/api/v1/video/generations?task_id=`` → the same envelope, ``data.state``
  ``pending``/``processing``/``completed``/``failed``, ``resultUrls[]``, ``failMsg``;
- errors: the envelope with an HTTP-like ``code`` (400 bad request, 401 unauthorized, 402 no
  credits, 404 no such task, 500 internal error).

Its task ids are its own, and its query knows only them: a lost create answer cannot be looked
up. Its page does not document ``external_task_id`` nor that a taken one is refused, so a create
whose outcome is unknown is never sent again: the task waits for its callback (apimodels calls
back on the final state, retrying for 30 minutes) and is confirmed by the id that callback names.
A 500 tells nothing about whether a create landed, so it counts as a lost answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from service.errors import ProviderAuthError, ProviderRejected, ProviderRetryable
from service.kling.answers import AnswerLost, decode, refusal_by_status, task_state
from service.kling.client import HttpProviderClient
from service.kling.state import ProviderTaskState
from service.retry_after import parse_retry_after

GENERATIONS_PATH = "/api/v1/video/generations"
SUCCESS = 200


class ApiModelsClient(HttpProviderClient):
    name = "apimodels"
    model_field = "model"
    finds_by_external_id = False
    refuses_duplicate_external_ids = False  # undocumented: sending again might pay twice
    names_external_ids = False  # its task answers have no task_info

    def create_path(self) -> str:
        return GENERATIONS_PATH

    def query_request(self, ref: str) -> tuple[str, dict[str, str] | None]:
        return GENERATIONS_PATH, {"task_id": ref}

    def read(self, response: httpx.Response) -> Any:
        document = decode(response)
        code = document.get("code") if isinstance(document, Mapping) else None
        if not isinstance(code, int) or isinstance(code, bool):
            refusal_by_status(response, document)
        assert isinstance(document, Mapping)
        if code == SUCCESS:
            return document.get("data")
        message = str(document.get("msg") or document.get("message") or "")
        status = response.status_code
        if code in (401, 403):
            raise ProviderAuthError(code, message, http_status=status)
        if code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise ProviderRetryable(code, message, http_status=status, retry_after=retry_after)
        if code >= 500:
            raise AnswerLost(f"code {code}: {message[:200]}")
        raise ProviderRejected(code, message, http_status=status)

    def is_missing(self, refusal: ProviderRejected) -> bool:
        return refusal.code == 404

    def created_state(self, data: Any) -> ProviderTaskState:
        return task_state(data)

    def queried_state(self, data: Any) -> ProviderTaskState:
        return task_state(data)
