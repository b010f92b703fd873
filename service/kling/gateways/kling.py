"""The official Kling API's client, and gateways that keep its shape (kling-api.md §1, §6).

Its answers are wrapped (``code``, ``message``, ``data``), and a task can be looked up by our
``external_task_id`` three ways: the path form, the ``?external_task_id=`` query form, and the
newest pages of the task list.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from service.errors import ProviderRejected
from service.kling.answers import AnswerLost, read_kling, task_state
from service.kling.client import LIST_PAGE_SIZE, LIST_PAGES, OMNI_VIDEO_PATH, HttpProviderClient
from service.kling.state import ProviderTaskState

log = logging.getLogger(__name__)


class KlingClient(HttpProviderClient):
    """The official API, and gateways that keep its shape behind a ``/kling`` prefix
    (PowerTokens, CometAPI: their wrapped ``data.status`` + ``data.data`` answers too)."""

    name = "kling"
    model_field = "model_name"
    finds_by_external_id = True  # §1: the query takes the external_task_id in place of task_id

    def create_path(self) -> str:
        return OMNI_VIDEO_PATH

    def query_request(self, ref: str) -> tuple[str, dict[str, str] | None]:
        return f"{OMNI_VIDEO_PATH}/{quote(ref, safe='')}", None

    def read(self, response: httpx.Response) -> Any:
        return read_kling(response)

    def created_state(self, data: Any) -> ProviderTaskState:
        return task_state(data)

    def queried_state(self, data: Any) -> ProviderTaskState:
        return task_state(data)

    async def find_task(self, external_task_id: str) -> ProviderTaskState | None:
        """By the path form, then the ``?external_task_id=`` query form, then the newest pages
        of the list (§1): ``None`` only when none of them shows the task."""
        found = await self.query_task(external_task_id)
        if found is None:
            found = await self._find_by_query_form(external_task_id)
        if found is None:
            found = await self._find_in_list(external_task_id)
        if found is not None:
            log.info(
                "found task %s by its external id",
                found.task_id,
                extra={"action": "kling.find.found", "provider": self.name},
            )
        return found

    async def _find_by_query_form(self, external_task_id: str) -> ProviderTaskState | None:
        def read(data: Any) -> ProviderTaskState | None:
            # One task, or a list (an API that filters its list this way): ours by its id.
            return _named(data if isinstance(data, list) else [data], external_task_id)

        params = {"external_task_id": external_task_id}
        try:
            found = await self._get(OMNI_VIDEO_PATH, params, read, action="kling.find.query")
        except ProviderRejected as exc:
            self._form_refused("query", exc)
            return None
        return found if isinstance(found, ProviderTaskState) else None

    def _form_refused(self, form: str, refusal: ProviderRejected) -> None:
        """A refused lookup form (a parameter error, no such route at a gateway) is one this
        API does not have: it shows nothing. Refused credentials are raised as they are."""
        log.info(
            "the %s form of a lookup was refused: %s",
            form,
            refusal,
            extra={"action": "kling.find.form_refused", "provider": self.name},
        )

    async def _find_in_list(self, external_task_id: str) -> ProviderTaskState | None:
        def read(data: Any) -> tuple[ProviderTaskState | None, int]:
            items = data if isinstance(data, list) else []
            return _named(items, external_task_id), len(items)

        for page in range(1, LIST_PAGES + 1):
            params = {"pageNum": str(page), "pageSize": str(LIST_PAGE_SIZE)}
            try:
                answer = await self._get(OMNI_VIDEO_PATH, params, read, action="kling.find.list")
            except ProviderRejected as exc:
                self._form_refused("list", exc)
                return None
            if answer is None:
                return None
            found, count = answer
            if found is not None or count < LIST_PAGE_SIZE:
                return found
        return None


def _named(items: list[Any], external_task_id: str) -> ProviderTaskState | None:
    """The task of ``items`` whose ``task_info.external_task_id`` is ours, if any."""
    for item in items:
        try:
            state = task_state(item)
        except AnswerLost:
            continue  # an unreadable item is not ours to guess about
        if state.external_task_id == external_task_id:
            return state
    return None
