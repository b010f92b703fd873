"""Standard Webhooks signatures on callbacks (kling-api.md §5): the official test vector,
rotation (several secrets, several signatures), the ±5 min tolerance, the raw bytes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from service.errors import ConfigurationError
from service.receiver.verify import is_signed, verifier_for
from storage.records import DownloadStatus, TaskStatus
from tests.receiver_support import (
    OLD_SECRET,
    PROVIDER_URL,
    SECRET,
    Receiver,
    kling_task,
    open_receiver,
    signed_headers,
)

TOKEN = "tok-" + "s" * 40

# kling-api.md §5, the official test vector
VECTOR_SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
VECTOR_ID = "9876543210"
VECTOR_TIMESTAMP = 1781080794
VECTOR_BODY = (
    b'{"id":"1234567890","status":"succeeded","message":"",'
    b'"create_time":1781080778802,"update_time":1781080794151}'
)
VECTOR_SIGNATURE = "v1,UsKlJP00XoQyOn410NM9xv34sP+Gl0jnOO9Lcpr7NJ4="


def test_the_library_reproduces_the_official_test_vector() -> None:
    moment = datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC)
    signature = Webhook(VECTOR_SECRET).sign(VECTOR_ID, moment, VECTOR_BODY.decode())
    assert signature == VECTOR_SIGNATURE


def test_the_vector_is_refused_now_because_its_timestamp_is_past_the_tolerance() -> None:
    """The library checks the timestamp against the real clock: the vector's (June 2026) is
    too far from now to pass, however right its signature; a fresh one passes."""
    verifier = verifier_for(VECTOR_SECRET)
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert abs(datetime.now(UTC).timestamp() - VECTOR_TIMESTAMP) > 300
    assert verifier.verify(VECTOR_BODY, headers) is None
    now = datetime.now(UTC)
    fresh = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(VECTOR_SECRET).sign(VECTOR_ID, now, VECTOR_BODY.decode()),
    }
    verification = verifier.verify(VECTOR_BODY, fresh)
    assert verification is not None and is_signed(verification)


def test_a_malformed_secret_is_a_configuration_error_naming_no_secret() -> None:
    with pytest.raises(ConfigurationError) as raised:
        verifier_for(f"{SECRET}, whsec_")
    assert "secret 2 of 2" in str(raised.value)
    assert SECRET not in str(raised.value)


async def test_a_malformed_secret_stops_the_process_before_it_answers(tmp_path: Path) -> None:
    # read once at start, not at the first callback: the process never runs half-configured
    with pytest.raises(ConfigurationError, match="secret 2 of 2"):
        async with open_receiver(tmp_path, secret=f"{SECRET}, whsec_"):
            pytest.fail("the app started with a malformed secret")


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    # Rotation: the new secret and the old one, both accepted during the change-over.
    async with open_receiver(tmp_path, secret=f"{SECRET}, {OLD_SECRET}") as opened:
        yield opened


async def test_a_signed_final_notification_is_used_without_a_query(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN, status=TaskStatus.PROCESSING)
    body = json.dumps(kling_task("kt-1", "succeed")).encode()
    answer = await receiver.post(TOKEN, body, signed_headers(body))
    assert answer.status_code == 200, answer.text
    await receiver.run_jobs()
    assert receiver.provider.queries == []
    assert (await receiver.task(task.id)).status == TaskStatus.SUCCEEDED
    [video] = await receiver.services.storage.list_videos(task.id)
    assert (video.url, video.download_status) == (PROVIDER_URL, DownloadStatus.PENDING)
    [notification] = await receiver.services.storage.list_notifications(task.id)
    assert notification.verification is not None
    assert notification.verification.startswith("signed: Standard Webhooks signature valid")
    assert "secret 1 of 2" in notification.verification


@pytest.mark.parametrize(
    "secrets",
    [(OLD_SECRET,), (SECRET, OLD_SECRET), (OLD_SECRET, SECRET)],
    ids=["old-secret-only", "both-new-first", "both-old-first"],
)
async def test_during_a_rotation_any_matching_pair_is_enough(
    receiver: Receiver, secrets: tuple[str, ...]
) -> None:
    task = await receiver.add_task(TOKEN)
    body = json.dumps(kling_task("kt-1", "processing")).encode()
    headers = signed_headers(body, secrets=secrets)
    assert len(headers["webhook-signature"].split(" ")) == len(secrets)
    answer = await receiver.post(TOKEN, body, headers)
    assert answer.status_code == 200, answer.text
    assert len(await receiver.services.storage.list_notifications(task.id)) == 1


def _tampered(body: bytes) -> dict[str, str]:
    headers = signed_headers(body)
    headers["webhook-signature"] = signed_headers(body + b" ")["webhook-signature"]
    return headers


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda body: {}, id="no-headers"),
        pytest.param(
            lambda body: {**signed_headers(body), "webhook-signature": ""}, id="empty-signature"
        ),
        pytest.param(lambda body: signed_headers(body, secrets=("whsec_" + "A" * 43,)), id="other"),
        pytest.param(_tampered, id="signature-of-other-bytes"),
        pytest.param(
            lambda body: {**signed_headers(body), "webhook-id": "another-id"}, id="other-id"
        ),
        pytest.param(
            lambda body: signed_headers(body, at=datetime.now(UTC) - timedelta(minutes=6)),
            id="six-minutes-old",
        ),
        pytest.param(
            lambda body: signed_headers(body, at=datetime.now(UTC) + timedelta(minutes=6)),
            id="six-minutes-ahead",
        ),
        pytest.param(
            lambda body: {**signed_headers(body), "webhook-signature": "v1,%%%not-base64"},
            id="garbage",
        ),
        pytest.param(
            lambda body: {**signed_headers(body), "webhook-timestamp": "yesterday"},
            id="bad-timestamp",
        ),
    ],
)
async def test_a_missing_or_bad_signature_is_401_and_nothing_is_stored(
    receiver: Receiver, make_headers: object
) -> None:
    task = await receiver.add_task(TOKEN)
    body = json.dumps(kling_task("kt-1", "succeed")).encode()
    assert callable(make_headers)
    answer = await receiver.post(TOKEN, body, make_headers(body))
    assert answer.status_code == 401
    assert answer.json()["error"] == "bad_signature"
    assert await receiver.services.storage.list_notifications(task.id) == []


async def test_within_the_tolerance_a_signature_is_accepted(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN)
    body = json.dumps(kling_task("kt-1", "processing")).encode()
    for minutes in (-4, 4):
        at = datetime.now(UTC) + timedelta(minutes=minutes)
        answer = await receiver.post(TOKEN, body, signed_headers(body, at=at))
        assert answer.status_code == 200, (minutes, answer.text)
    assert len(await receiver.services.storage.list_notifications(task.id)) == 2


async def test_the_signature_covers_the_raw_bytes(receiver: Receiver) -> None:
    """The same JSON, spaced differently, is other bytes: its signature does not carry over."""
    await receiver.add_task(TOKEN)
    compact = b'{"task_id":"kt-1","task_status":"processing"}'
    spaced = b'{"task_id": "kt-1", "task_status": "processing"}'
    assert (await receiver.post(TOKEN, spaced, signed_headers(spaced))).status_code == 200
    assert (await receiver.post(TOKEN, spaced, signed_headers(compact))).status_code == 401


async def test_with_signing_on_a_forged_request_learns_nothing_about_tokens(
    receiver: Receiver,
) -> None:
    await receiver.add_task(TOKEN)
    body = json.dumps(kling_task("kt-1", "processing")).encode()
    known = await receiver.post(TOKEN, body)
    unknown = await receiver.post("no-such-token", body)
    assert known.status_code == unknown.status_code == 401
