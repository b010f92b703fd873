"""KlingClient and its auth against scripted answers (httpx.MockTransport; no patching)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import httpx
import jwt
import pytest

from service.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnreachable,
)
from service.kling.auth import ApiKeyAuth, JwtAuth, auth_from_settings
from service.kling.client import is_busy
from service.kling.gateways.kling import KlingClient
from service.kling.state import ProviderStatus
from service.retry import RetrySchedule
from service.retry_after import parse_retry_after
from service.settings import Settings
from tests.kling.scripted import API_KEY, NO_JITTER, Script, Sleeps, Step, lost, refused

BASE = "https://api-singapore.klingai.com"
ACCESS_KEY = "ak-test-access"
SECRET_KEY = "sk-test-secret-that-must-never-leak"

TASK = {
    "task_id": "867283741759111202",
    "task_status": "submitted",
    "task_info": {"external_task_id": "job-0001"},
    "created_at": 1774805076166,
    "updated_at": 1774805076166,
}
BODY = {"model_name": "kling-v3-omni", "prompt": "a fox", "external_task_id": "job-0001"}


def ok(data: Any = TASK) -> httpx.Response:
    return httpx.Response(
        200, json={"code": 0, "message": "SUCCEED", "request_id": "r", "data": data}
    )


def error(code: int, http: int, message: str = "refused", **headers: str) -> httpx.Response:
    body = {"code": code, "message": message, "request_id": f"req-{code}"}
    return httpx.Response(http, json=body, headers=headers)


@pytest.fixture
def kling(
    http: Callable[[Script], httpx.AsyncClient], sleeps: Sleeps
) -> Callable[..., KlingClient]:
    def make(script: Script, *, base: str = BASE, auth: httpx.Auth | None = None) -> KlingClient:
        return KlingClient(
            http(script), base, auth=auth or ApiKeyAuth(API_KEY), retry=NO_JITTER, sleep=sleeps
        )

    return make


# --- success -------------------------------------------------------------------------------


async def test_create_sends_the_body_with_the_key(kling: Callable[..., KlingClient]) -> None:
    script = Script(ok())
    state = await kling(script).create_task(BODY)
    assert (state.task_id, state.status) == ("867283741759111202", ProviderStatus.SUBMITTED)
    [request] = script.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/v1/videos/omni-video")
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert json.loads(request.content) == BODY


async def test_query_by_id(kling: Callable[..., KlingClient]) -> None:
    script = Script(ok(TASK | {"task_status": "processing"}))
    state = await kling(script).query_task("job/0001 x")
    assert state is not None and state.status is ProviderStatus.PROCESSING
    assert script.requests[0].url.raw_path == b"/v1/videos/omni-video/job%2F0001%20x"


async def test_gateway_base_url_with_kling_prefix(kling: Callable[..., KlingClient]) -> None:
    script = Script(ok(), ok())
    client = kling(script, base="https://api.cometapi.com/kling/")
    await client.create_task(BODY)
    await client.query_task("867283741759111202")
    assert [str(r.url) for r in script.requests] == [
        "https://api.cometapi.com/kling/v1/videos/omni-video",
        "https://api.cometapi.com/kling/v1/videos/omni-video/867283741759111202",
    ]


@pytest.mark.parametrize(
    "answer",
    [
        {"code": 0, "data": {"status": "SUCCESS", "data": TASK}},  # CometAPI's wrapped query
        {"code": "success", "data": {"status": "FAILURE", "data": TASK}},  # word, inner wins
        {"code": "success", "data": {"status": "SUCCESS", "data": ok().json()}},
    ],
    ids=["cometapi", "cometapi FAILURE word", "cometapi envelope inside"],
)
async def test_query_through_gateway_wrappers(
    kling: Callable[..., KlingClient], answer: dict[str, Any]
) -> None:
    state = await kling(Script(httpx.Response(200, json=answer))).query_task("x")
    assert state is not None and state.task_id == "867283741759111202"
    assert state.status is ProviderStatus.SUBMITTED  # Kling's own word, not the wrapper's


async def test_a_wrapper_without_a_readable_task_is_read_itself(
    kling: Callable[..., KlingClient],
) -> None:
    answer = {"code": "success", "data": {"task_id": "c-1", "status": "FAILURE", "data": None}}
    state = await kling(Script(httpx.Response(200, json=answer))).query_task("c-1")
    assert state is not None and (state.task_id, state.status) == ("c-1", ProviderStatus.FAILED)


@pytest.mark.parametrize(
    "answer",
    [error(1203, 404, "task 1 does not exist"), httpx.Response(404, json={"error": "not found"})],
    ids=["code 1203", "HTTP 404 without envelope"],
)
async def test_query_of_an_unknown_task_is_none(
    kling: Callable[..., KlingClient], answer: httpx.Response
) -> None:
    assert await kling(Script(answer)).query_task("1") is None


async def test_query_1202_is_a_wrong_route_not_a_missing_task(
    kling: Callable[..., KlingClient],
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await kling(Script(error(1202, 404, "no such endpoint"))).query_task("1")
    assert caught.value.code == 1202


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1002])
async def test_credentials_refused(kling: Callable[..., KlingClient], code: int) -> None:
    script = Script(error(code, 401))
    with pytest.raises(ProviderAuthError) as caught:
        await kling(script).create_task(BODY)
    assert caught.value.code == code and len(script.requests) == 1


@pytest.mark.parametrize(
    ("code", "http_status"),
    [
        (1100, 429),
        (1101, 429),
        (1102, 429),
        (1103, 403),
        (1200, 400),
        (1201, 400),
        (1202, 404),
        (1203, 404),
        (1300, 400),
        (1301, 400),
        (1304, 429),
        (9999, 400),
    ],
)
async def test_refusals_keep_code_message_request_id_and_status(
    kling: Callable[..., KlingClient], sleeps: Sleeps, code: int, http_status: int
) -> None:
    script = Script(error(code, http_status, "Invalid parameter duration"))
    with pytest.raises(ProviderRejected) as caught:
        await kling(script).create_task(BODY)
    exc = caught.value
    assert (exc.code, exc.provider_message, exc.request_id, exc.http_status) == (
        code,
        "Invalid parameter duration",
        f"req-{code}",
        http_status,
    )
    assert len(script.requests) == 1 and sleeps == []


@pytest.mark.parametrize(("code", "http_status"), [(5000, 500), (5001, 503), (5002, 504)])
async def test_retryable_then_success(
    kling: Callable[..., KlingClient], sleeps: Sleeps, code: int, http_status: int
) -> None:
    script = Script(error(code, http_status), error(code, http_status), ok())
    state = await kling(script).create_task(BODY)
    assert state.task_id == "867283741759111202"
    assert script.methods() == ["POST", "POST", "POST"]  # a coded refusal created nothing
    assert sleeps == [1, 2]


@pytest.mark.parametrize(("code", "http_status"), [(1302, 429), (1303, 429)])
async def test_a_create_refused_for_want_of_room_is_raised_at_once(
    kling: Callable[..., KlingClient], sleeps: Sleeps, code: int, http_status: int
) -> None:
    # Its task waits in omnihook's queue (service.submit.admission), not in a request or a
    # worker slot.
    script = Script(error(code, http_status), ok())
    with pytest.raises(ProviderRetryable) as caught:
        await kling(script).create_task(BODY)
    assert is_busy(caught.value) and caught.value.code == code
    assert script.methods() == ["POST"] and sleeps == []


@pytest.mark.parametrize(("code", "http_status"), [(1302, 429), (1303, 429)])
async def test_a_query_refused_for_want_of_room_is_retried(
    kling: Callable[..., KlingClient], sleeps: Sleeps, code: int, http_status: int
) -> None:
    script = Script(error(code, http_status), error(code, http_status), ok())
    state = await kling(script).query_task("867283741759111202")
    assert state is not None and state.task_id == "867283741759111202"
    assert script.methods() == ["GET", "GET", "GET"]
    assert sleeps == [1, 2]


async def test_retry_exhaustion_raises_retryable(
    kling: Callable[..., KlingClient], sleeps: Sleeps
) -> None:
    script = Script(*[error(5001, 503, "maintenance") for _ in range(4)])
    with pytest.raises(ProviderRetryable) as caught:
        await kling(script).query_task("1")
    assert caught.value.code == 5001 and caught.value.http_status == 503
    assert len(script.requests) == 4 and sleeps == [1, 2, 4]


async def test_retry_after_is_honoured(kling: Callable[..., KlingClient], sleeps: Sleeps) -> None:
    script = Script(error(1302, 429, **{"Retry-After": "3"}), error(5000, 500), ok())
    await kling(script).query_task("867283741759111202")
    assert sleeps == [3, 2]


async def test_rate_limit_waits_at_least_a_second(
    http: Callable[[Script], httpx.AsyncClient], sleeps: Sleeps
) -> None:
    script = Script(error(1303, 429, "parallel task over resource pack limit"), ok())
    client = KlingClient(
        http(script),
        BASE,
        auth=ApiKeyAuth(API_KEY),
        retry=RetrySchedule.of([0.1], jitter=0),
        sleep=sleeps,
    )
    await client.query_task("867283741759111202")
    assert sleeps == [1.0]


async def test_long_retry_after_is_left_to_the_caller(
    kling: Callable[..., KlingClient], sleeps: Sleeps
) -> None:
    script = Script(error(1302, 429, **{"Retry-After": "600"}))
    with pytest.raises(ProviderRetryable) as caught:
        await kling(script).create_task(BODY)
    assert caught.value.retry_after == 600 and sleeps == []


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    in_a_minute = parse_retry_after(formatdate(1e10, usegmt=True))
    assert in_a_minute is not None and in_a_minute > 0


async def test_query_unreachable_after_retries(
    kling: Callable[..., KlingClient], sleeps: Sleeps
) -> None:
    script = Script(refused, lost, httpx.Response(502, text="<html>bad gateway</html>"), refused)
    with pytest.raises(ProviderUnreachable, match="no usable answer after 4 attempts") as caught:
        await kling(script).query_task("1")
    assert isinstance(caught.value.__cause__, Exception)
    assert sleeps == [1, 2, 4]


# --- a create whose answer is lost --------------------------------------------------------------


def lookup_finds(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/v1/videos/omni-video/job-0001"
    return ok(TASK | {"task_status": "processing"})


@pytest.mark.parametrize(
    "loss",
    [
        lost,
        lambda request: (_ for _ in ()).throw(httpx.RemoteProtocolError("reset", request=request)),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(200, text="{truncated"),
        httpx.Response(200, json={"code": 0, "data": {"no": "task"}}),
    ],
    ids=["timeout", "reset", "5xx without envelope", "unreadable", "no task in answer"],
)
async def test_lost_create_answer_is_looked_up_not_resent(
    kling: Callable[..., KlingClient], loss: Step
) -> None:
    script = Script(loss, lookup_finds)
    state = await kling(script).create_task(BODY)
    assert state.status is ProviderStatus.PROCESSING
    assert script.methods() == ["POST", "GET"]


async def test_lost_create_unknown_to_the_provider_is_sent_again_once(
    kling: Callable[..., KlingClient], sleeps: Sleeps
) -> None:
    script = Script(lost, error(1203, 404, "task job-0001 does not exist"), ok())
    state = await kling(script).create_task(BODY)
    assert state.task_id == "867283741759111202"
    assert script.methods() == ["POST", "GET", "POST"]
    assert sleeps == [1]


async def test_lost_create_with_unreachable_lookup_is_unreachable(
    kling: Callable[..., KlingClient], sleeps: Sleeps
) -> None:
    script = Script(lost, refused, lost, error(5000, 500))
    with pytest.raises(ProviderUnreachable, match="may or may not exist"):
        await kling(script).create_task(BODY)
    assert script.methods() == ["POST", "GET", "GET", "GET"]  # never a second create
    assert sleeps == [1, 2, 4]


async def test_lost_create_without_external_id_is_never_resent(
    kling: Callable[..., KlingClient],
) -> None:
    script = Script(lost)
    body = {key: value for key, value in BODY.items() if key != "external_task_id"}
    with pytest.raises(ProviderUnreachable, match="not sent again"):
        await kling(script).create_task(body)
    assert script.methods() == ["POST"]


async def test_connect_error_is_retried_directly(
    kling: Callable[..., KlingClient], sleeps: Sleeps
) -> None:
    script = Script(refused, ok())
    await kling(script).create_task({"prompt": "no external id needed: nothing was sent"})
    assert script.methods() == ["POST", "POST"] and sleeps == [1]


# --- JWT ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def bearer(request: httpx.Request) -> str:
    return request.headers["Authorization"].removeprefix("Bearer ")


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token, SECRET_KEY, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )
    return decoded


def test_jwt_claims_and_header() -> None:
    token = JwtAuth(ACCESS_KEY, SECRET_KEY, clock=Clock(1_781_000_000.7)).token()
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert claims(token) == {"iss": ACCESS_KEY, "exp": 1_781_001_800, "nbf": 1_780_999_995}


def test_jwt_is_cached_and_renewed_before_expiry() -> None:
    clock = Clock(1_781_000_000)
    auth = JwtAuth(ACCESS_KEY, SECRET_KEY, clock=clock)
    first = auth.token()
    clock.now += 1500  # exactly 300 s of validity left: still good
    assert auth.token() == first
    clock.now += 1  # less than five minutes left: renew
    assert claims(auth.token())["exp"] == clock.now + 1800


async def test_expired_token_gets_a_fresh_jwt_once(
    http: Callable[[Script], httpx.AsyncClient], sleeps: Sleeps
) -> None:
    clock = Clock(1_781_000_000)

    def expired(request: httpx.Request) -> httpx.Response:
        clock.now += 60  # so the renewed token differs visibly
        return error(1004, 401, "Authorization has expired")

    script = Script(expired, ok())
    auth = JwtAuth(ACCESS_KEY, SECRET_KEY, clock=clock)
    client = KlingClient(http(script), BASE, auth=auth, retry=NO_JITTER, sleep=sleeps)
    await client.create_task(BODY)
    first, second = (bearer(request) for request in script.requests)
    assert first != second
    assert claims(second)["nbf"] == claims(first)["nbf"] + 60
    assert sleeps == []


async def test_token_refused_twice_is_an_auth_error(
    http: Callable[[Script], httpx.AsyncClient], sleeps: Sleeps
) -> None:
    script = Script(error(1003, 401), error(1004, 401))
    client = KlingClient(http(script), BASE, auth=JwtAuth(ACCESS_KEY, SECRET_KEY), sleep=sleeps)
    with pytest.raises(ProviderAuthError) as caught:
        await client.create_task(BODY)
    assert caught.value.code == 1004 and len(script.requests) == 2


async def test_expired_with_an_api_key_is_an_auth_error(kling: Callable[..., KlingClient]) -> None:
    script = Script(error(1004, 401))
    with pytest.raises(ProviderAuthError):
        await kling(script).create_task(BODY)
    assert len(script.requests) == 1


# --- secrets -------------------------------------------------------------------------------------


async def test_secrets_stay_out_of_repr_errors_and_logs(
    http: Callable[[Script], httpx.AsyncClient], sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="service.kling")
    api, signed = ApiKeyAuth(API_KEY), JwtAuth(ACCESS_KEY, SECRET_KEY)
    texts = [repr(api), repr(signed)]
    for auth in (api, signed):
        script = Script(error(1000, 401), lost, refused, refused, refused)
        client = KlingClient(http(script), BASE, auth=auth, retry=NO_JITTER, sleep=sleeps)
        texts.append(repr(client))
        for call in (client.create_task(BODY), client.query_task("1")):
            with pytest.raises((ProviderAuthError, ProviderUnreachable)) as caught:
                await call
            texts.append(str(caught.value))
    texts.extend(record.getMessage() for record in caplog.records)
    assert any(record.__dict__.get("action") == "kling.query.retry" for record in caplog.records)
    for text in texts:
        for secret in (API_KEY, ACCESS_KEY, SECRET_KEY):
            assert secret not in text


# --- settings ------------------------------------------------------------------------------------


def settings(**values: str | None) -> Settings:
    fields = {"kling_api_key": None, "kling_access_key": None, "kling_secret_key": None}
    return Settings(_env_file=None, **(fields | values))  # type: ignore[call-arg, arg-type]


def test_auth_from_settings_prefers_jwt() -> None:
    chosen = auth_from_settings(
        settings(kling_api_key=API_KEY, kling_access_key=ACCESS_KEY, kling_secret_key=SECRET_KEY)
    )
    assert isinstance(chosen, JwtAuth)
    assert isinstance(auth_from_settings(settings(kling_api_key=API_KEY)), ApiKeyAuth)
    assert isinstance(
        auth_from_settings(settings(kling_api_key=API_KEY, kling_access_key=ACCESS_KEY)),
        ApiKeyAuth,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {},
            "set OMNIHOOK_KLING_API_KEY or OMNIHOOK_KLING_ACCESS_KEY and OMNIHOOK_KLING_SECRET_KEY",
        ),
        ({"kling_access_key": ACCESS_KEY}, "OMNIHOOK_KLING_SECRET_KEY is missing"),
        ({"kling_secret_key": SECRET_KEY}, "OMNIHOOK_KLING_ACCESS_KEY is missing"),
        ({"kling_api_key": "  "}, "set OMNIHOOK_KLING_API_KEY"),
    ],
)
def test_auth_from_settings_without_credentials(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        auth_from_settings(settings(**values))
    assert SECRET_KEY not in str(caught.value)


async def test_lost_create_with_refused_lookup_stays_unknown(
    kling: Callable[..., KlingClient],
) -> None:
    # A refusal of the lookup says nothing about the create: the caller must not forget the task.
    script = Script(lost, error(1103, 403, "no permission"))
    with pytest.raises(ProviderUnreachable, match="may or may not exist"):
        await kling(script).create_task(BODY)
    assert script.methods() == ["POST", "GET"]
