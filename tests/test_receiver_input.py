"""Bad input at the receiver: size caps (declared and chunked, over a real socket), unreadable
bodies, storage failures. A refused request stores nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from handlers.registry import HandlerRegistry
from service.app import create_app
from service.errors import StorageError
from service.loopback import serve_on_loopback
from service.receiver.limits import MAX_NOTIFICATION_BYTES
from service.receiver.verify import token_hash
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from storage.records import JobRecord, NotificationRecord, TaskRecord
from tests.factories import make_task
from tests.receiver_support import Receiver, kling_task, open_receiver

TOKEN = "tok-" + "i" * 40


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    async with open_receiver(tmp_path) as opened:
        yield opened


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"a string"',
        b"{}",
        b'{"task_id": "kt-1"}',
        b'{"task_id": "kt-1", "task_status": "dancing"}',
        b"\xff\xfe{}",
        b"[" * 100_000,
        b'{"n": ' + b"9" * 10_000 + b"}",
    ],
    ids=lambda body: repr(body[:24]),
)
async def test_an_unreadable_body_is_400_and_nothing_is_stored(
    receiver: Receiver, body: bytes
) -> None:
    task = await receiver.add_task(TOKEN)
    answer = await receiver.post(TOKEN, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "unreadable_notification"
    assert await receiver.services.storage.list_notifications(task.id) == []


@pytest.mark.parametrize("created_at", [10**400, "9" * 5000], ids=["huge int", "huge digits"])
async def test_a_time_of_absurd_size_is_ignored_not_a_500(
    receiver: Receiver, created_at: object
) -> None:
    task = await receiver.add_task(TOKEN)
    body = {**kling_task("kt-1", "processing"), "created_at": created_at}
    answer = await receiver.post(TOKEN, json.dumps(body).encode())
    assert answer.status_code == 200, answer.text
    assert len(await receiver.services.storage.list_notifications(task.id)) == 1
    await receiver.run_jobs()
    assert (await receiver.task(task.id)).status == "processing"


async def test_a_declared_oversized_body_is_413(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN)
    body = json.dumps({**kling_task("kt-1", "processing"), "pad": "x" * MAX_NOTIFICATION_BYTES})
    answer = await receiver.post(TOKEN, body.encode())
    assert answer.status_code == 413
    assert answer.json()["error"] == "body_too_large"
    assert await receiver.services.storage.list_notifications(task.id) == []


class BrokenInbox(MemoryStorage):
    """A database that cannot take the notification right now."""

    async def record_notification(self, notification: NotificationRecord, job: JobRecord) -> None:
        raise StorageError("database is locked")


async def test_a_storage_failure_is_503_so_the_provider_sends_it_again(tmp_path: Path) -> None:
    async with open_receiver(tmp_path, storage=BrokenInbox()) as receiver:
        task = await receiver.add_task(TOKEN)
        answer = await receiver.post(TOKEN, kling_task("kt-1", "processing"))
        assert answer.status_code == 503
        assert answer.json()["error"] == "storage_unavailable"
        assert await receiver.services.storage.list_notifications(task.id) == []


# -- over a real socket ------------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, MemoryStorage, TaskRecord]]:
    storage = MemoryStorage()
    settings = load_settings(
        database_url="memory://", media_dir=tmp_path / "media", kling_api_key="k"
    )
    app = create_app(settings, storage=storage, registry=HandlerRegistry())
    async with serve_on_loopback(app) as url:
        task = make_task(callback_token_hash=token_hash(TOKEN), provider_task_id="kt-1")
        await storage.create_task(task)
        yield url, storage, task


async def _exchange(url: str, head: bytes, chunks: Sequence[bytes]) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks`` while reading the answer; stop sending once it comes.
    Answers the status line and how many body bytes had been sent by then."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    sent = 0

    async def send() -> None:
        nonlocal sent
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0)

    sending = asyncio.create_task(send())
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answer.split(b"\r\n", 1)[0], sent


def _chunked(payload: bytes, size: int) -> list[bytes]:
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    return [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]


def _head(extra: str) -> bytes:
    return (
        f"POST /callbacks/kling/{TOKEN} HTTP/1.1\r\nHost: omnihook.test\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


async def test_a_chunked_body_over_the_cap_is_refused_before_it_is_all_sent(
    served: tuple[str, MemoryStorage, TaskRecord],
) -> None:
    url, storage, task = served
    total = 16 * MAX_NOTIFICATION_BYTES
    body = b'{"task_id": "kt-1", "task_status": "processing", "pad": "' + b"x" * total + b'"}'
    status, sent = await _exchange(
        url, _head("Transfer-Encoding: chunked\r\n"), _chunked(body, 64 * 1024)
    )
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert sent < total  # answered while most of the body was still to come
    assert await storage.list_notifications(task.id) == []


async def test_a_declared_oversized_body_is_refused_before_a_byte_of_it(
    served: tuple[str, MemoryStorage, TaskRecord],
) -> None:
    url, storage, task = served
    head = _head(f"Content-Length: {8 * MAX_NOTIFICATION_BYTES}\r\n")
    status, sent = await _exchange(url, head, [])
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert sent == 0
    assert await storage.list_notifications(task.id) == []


async def test_a_chunked_body_under_the_cap_is_stored(
    served: tuple[str, MemoryStorage, TaskRecord],
) -> None:
    url, storage, task = served
    body = json.dumps(kling_task("kt-1", "processing")).encode()
    status, _ = await _exchange(url, _head("Transfer-Encoding: chunked\r\n"), _chunked(body, 7))
    assert status == b"HTTP/1.1 200 OK"
    [stored] = await storage.list_notifications(task.id)
    assert stored.body == body
