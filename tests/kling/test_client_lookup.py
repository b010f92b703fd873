"""Finding a task by our external id in every form Kling documents (path, ``?external_task_id=``,
the newest list pages), and a create sent again that is refused as a duplicate (proof the task
exists), against scripted answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.errors import ProviderAuthError, ProviderRejected, ProviderUnreachable
from service.kling.auth import ApiKeyAuth
from service.kling.client import (
    LIST_PAGE_SIZE,
    LIST_PAGES,
    TaskExistsUnseen,
    refused_as_duplicate,
)
from service.kling.gateways import ApiModelsClient, NewApiClient
from service.kling.gateways.kling import KlingClient
from tests.kling.scripted import API_KEY, NO_JITTER, Script, Sleeps, lost

BASE = "https://api-singapore.klingai.com"
OURS = {
    "task_id": "867283741759111202",
    "task_status": "processing",
    "task_info": {"external_task_id": "job-0001"},
    "created_at": 1774805076166,
    "updated_at": 1774805076166,
}
BODY = {"model_name": "kling-v3-omni", "prompt": "a fox", "external_task_id": "job-0001"}
DUPLICATE = "Invalid parameter external_task_id: job-0001 already exists"


def ok(data: Any) -> httpx.Response:
    return httpx.Response(
        200, json={"code": 0, "message": "SUCCEED", "request_id": "r", "data": data}
    )


def error(code: int, http: int, message: str = "refused") -> httpx.Response:
    return httpx.Response(http, json={"code": code, "message": message, "request_id": "r"})


MISSING = error(1203, 404, "task job-0001 does not exist")


def other(n: int) -> dict[str, Any]:
    return OURS | {
        "task_id": str(800000000000000000 + n),
        "task_info": {"external_task_id": f"o{n}"},
    }


@pytest.fixture
def kling(
    http: Callable[[Script], httpx.AsyncClient], sleeps: Sleeps
) -> Callable[[Script], KlingClient]:
    def make(script: Script) -> KlingClient:
        return KlingClient(
            http(script), BASE, auth=ApiKeyAuth(API_KEY), retry=NO_JITTER, sleep=sleeps
        )

    return make


def asked(script: Script) -> list[str]:
    return [f"{r.method} {r.url.path}?{r.url.query.decode()}".rstrip("?") for r in script.requests]


async def test_the_path_form_comes_first(kling: Callable[[Script], KlingClient]) -> None:
    script = Script(ok(OURS))
    found = await kling(script).find_task("job-0001")
    assert found is not None and found.task_id == OURS["task_id"]
    assert asked(script) == ["GET /v1/videos/omni-video/job-0001"]


async def test_the_query_form_when_the_path_form_misses(
    kling: Callable[[Script], KlingClient],
) -> None:
    script = Script(MISSING, ok(OURS))
    found = await kling(script).find_task("job-0001")
    assert found is not None and found.task_id == OURS["task_id"]
    assert asked(script)[1] == "GET /v1/videos/omni-video?external_task_id=job-0001"


async def test_a_query_form_answer_about_another_task_is_not_ours(
    kling: Callable[[Script], KlingClient],
) -> None:
    # An API that ignores the parameter answers its list: ours is not in it, so the list is read.
    script = Script(MISSING, ok([other(1), other(2)]), ok([other(1), other(2)]))
    assert await kling(script).find_task("job-0001") is None
    assert asked(script)[2] == f"GET /v1/videos/omni-video?pageNum=1&pageSize={LIST_PAGE_SIZE}"


async def test_the_list_pages_are_matched_on_task_info(
    kling: Callable[[Script], KlingClient],
) -> None:
    full_page = [other(n) for n in range(LIST_PAGE_SIZE)]
    script = Script(
        MISSING,
        error(1201, 400, "Invalid parameter external_task_id"),
        ok(full_page),
        ok([other(1000), OURS]),
    )
    found = await kling(script).find_task("job-0001")
    assert found is not None and found.task_id == OURS["task_id"]
    assert asked(script)[3] == f"GET /v1/videos/omni-video?pageNum=2&pageSize={LIST_PAGE_SIZE}"


async def test_a_short_page_ends_the_search(kling: Callable[[Script], KlingClient]) -> None:
    script = Script(MISSING, MISSING, ok([other(1)]))
    assert await kling(script).find_task("job-0001") is None
    assert len(script.requests) == 3


async def test_the_search_stops_after_the_newest_pages(
    kling: Callable[[Script], KlingClient],
) -> None:
    full_page = [other(n) for n in range(LIST_PAGE_SIZE)]
    script = Script(MISSING, MISSING, *(ok(full_page) for _ in range(LIST_PAGES)))
    assert await kling(script).find_task("job-0001") is None
    assert len(script.requests) == 2 + LIST_PAGES


async def test_a_refused_list_shows_nothing(kling: Callable[[Script], KlingClient]) -> None:
    # A gateway without the list route (1202): that form shows nothing, it is no error.
    script = Script(MISSING, MISSING, error(1202, 404, "invalid method"))
    assert await kling(script).find_task("job-0001") is None


async def test_refused_credentials_are_not_a_missing_task(
    kling: Callable[[Script], KlingClient],
) -> None:
    with pytest.raises(ProviderAuthError):
        await kling(Script(MISSING, error(1000, 401))).find_task("job-0001")


async def test_a_create_sent_again_and_refused_as_a_duplicate_proves_the_task(
    kling: Callable[[Script], KlingClient], sleeps: Sleeps
) -> None:
    script = Script(lost, MISSING, error(1201, 400, DUPLICATE))
    with pytest.raises(TaskExistsUnseen, match="refused as a duplicate"):
        await kling(script).create_task(BODY)
    assert script.methods() == ["POST", "GET", "POST"]


async def test_a_first_create_refused_as_a_duplicate_is_a_plain_refusal(
    kling: Callable[[Script], KlingClient],
) -> None:
    # Nothing was lost: the caller's external id was simply used before.
    with pytest.raises(ProviderRejected) as caught:
        await kling(Script(error(1201, 400, DUPLICATE))).create_task(BODY)
    assert not isinstance(caught.value, ProviderUnreachable)
    assert refused_as_duplicate(caught.value)


@pytest.mark.parametrize(
    ("message", "duplicate"),
    [
        (DUPLICATE, True),
        ("external_task_id already exists", True),
        ("Bad Request - Invalid parameter external_task_id: x already exists", True),
        ("Invalid parameter prompt: is required", False),
        ("task already exists", False),
    ],
)
def test_a_duplicate_is_told_by_its_message(message: str, duplicate: bool) -> None:
    assert refused_as_duplicate(ProviderRejected(1201, message)) is duplicate


def test_which_shapes_refuse_a_taken_external_id() -> None:
    # apimodels documents neither the field nor the refusal: never send its creates again.
    assert KlingClient.refuses_duplicate_external_ids
    assert NewApiClient.refuses_duplicate_external_ids
    assert not ApiModelsClient.refuses_duplicate_external_ids
