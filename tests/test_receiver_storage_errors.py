"""A storage failure is a 503 with Retry-After, never a 500: on every path of the callback
receiver (token lookup, the write, the console probe, a cached token) and on the API. An
unexpected error is still a clean 500 in the same JSON shape, and logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.api.errors import STORAGE_RETRY_AFTER
from service.app import create_app
from service.errors import StorageError
from service.http.limits import ServerLimits
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from storage.records import JobRecord, NotificationRecord, TaskRecord
from tests.http_support import guarded_server
from tests.receiver_support import kling_task, open_receiver

TOKEN = "tok-" + "d" * 40
NOTIFICATION = kling_task("kt-1", "processing")
PROBE = {"id": "console-test", "status": "submitted", "outputs": []}  # the console's button


class Outage(StorageError):
    """A subclass of StorageError, as a backend's 'unavailable' error is."""


class FailingStorage(MemoryStorage):
    """The in-memory backend, whose named methods raise ``failure`` while it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[str] = set()
        self.failure: Exception = Outage("connection to the database lost")

    def _check(self, method: str) -> None:
        if method in self.failing:
            raise self.failure

    async def get_task_by_token_hash(self, token_hash: str) -> TaskRecord | None:
        self._check("get_task_by_token_hash")
        return await super().get_task_by_token_hash(token_hash)

    async def record_notification(self, notification: NotificationRecord, job: JobRecord) -> None:
        self._check("record_notification")
        await super().record_notification(notification, job)

    async def get_task(self, id_or_external_id: str) -> TaskRecord | None:
        self._check("get_task")
        return await super().get_task(id_or_external_id)

    async def list_tasks(self, *args: object, **kwargs: object) -> list[TaskRecord]:
        self._check("list_tasks")
        return await super().list_tasks(*args, **kwargs)  # type: ignore[arg-type]


def _assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "storage_unavailable"
    assert answer.headers["retry-after"] == str(STORAGE_RETRY_AFTER)


@pytest.mark.parametrize("failure", [StorageError("database is locked"), Outage("gone")])
@pytest.mark.parametrize("method", ["get_task_by_token_hash", "record_notification"])
@pytest.mark.parametrize("body", [NOTIFICATION, PROBE], ids=["notification", "probe"])
async def test_a_storage_failure_on_the_callback_path_is_503(
    tmp_path: Path, failure: Exception, method: str, body: dict[str, object]
) -> None:
    storage = FailingStorage()
    async with open_receiver(tmp_path, storage=storage) as receiver:
        task = await receiver.add_task(TOKEN)
        storage.failing, storage.failure = {method}, failure
        _assert_unavailable(await receiver.post(TOKEN, body))
        storage.failing = set()
        assert await storage.list_notifications(task.id) == []
        # The database is back: the provider's next attempt is stored.
        assert (await receiver.post(TOKEN, body)).status_code == 200


async def test_a_write_failure_after_the_token_was_cached_is_503(tmp_path: Path) -> None:
    storage = FailingStorage()
    async with open_receiver(tmp_path, storage=storage) as receiver:
        task = await receiver.add_task(TOKEN)
        assert (await receiver.post(TOKEN, NOTIFICATION)).status_code == 200  # token cached
        storage.failing = {"get_task_by_token_hash", "record_notification"}
        _assert_unavailable(await receiver.post(TOKEN, NOTIFICATION))
        assert len(await storage.list_notifications(task.id)) == 1


async def test_an_unexpected_error_on_the_callback_path_is_a_logged_500_in_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = FailingStorage()
    async with open_receiver(tmp_path, storage=storage) as receiver:
        await receiver.add_task(TOKEN)
        storage.failing, storage.failure = {"record_notification"}, RuntimeError("a bug")
        with caplog.at_level(logging.ERROR, logger="service.api.callbacks"):
            answer = await receiver.post(TOKEN, NOTIFICATION)
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal_error"
    [record] = [
        r for r in caplog.records if getattr(r, "action", None) == "callback.unexpected_error"
    ]
    assert record.exc_info is not None and str(record.exc_info[1]) == "a bug"
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("method", "path"), [("list_tasks", "/v1/tasks"), ("get_task", "/v1/tasks/task_x")]
)
@pytest.mark.parametrize("failure", [StorageError("database is locked"), Outage("gone")])
async def test_a_storage_failure_on_the_api_is_503(
    tmp_path: Path, method: str, path: str, failure: Exception
) -> None:
    storage = FailingStorage()
    async with open_receiver(tmp_path, storage=storage) as receiver:
        storage.failing, storage.failure = {method}, failure
        _assert_unavailable(await receiver.client.get(path))


async def test_an_unexpected_error_on_the_api_is_a_500_in_json(tmp_path: Path) -> None:
    storage = FailingStorage()
    async with open_receiver(tmp_path, storage=storage, raise_app_exceptions=False) as receiver:
        storage.failing, storage.failure = {"list_tasks"}, RuntimeError("a bug")
        answer = await receiver.client.get("/v1/tasks")
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal_error"


async def test_under_the_real_server_an_outage_is_503_and_the_connection_stays_usable(
    tmp_path: Path,
) -> None:
    storage = FailingStorage()
    settings = load_settings(
        database_url="memory://", media_dir=tmp_path / "media", kling_api_key="k"
    )
    app = create_app(settings, storage=storage, registry=HandlerRegistry())
    async with (
        guarded_server(app, ServerLimits()) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        storage.failing = {"get_task_by_token_hash", "get_task"}
        body = json.dumps(NOTIFICATION).encode()
        _assert_unavailable(await client.post(f"/callbacks/kling/{TOKEN}", content=body))
        _assert_unavailable(await client.get("/v1/tasks/task_x"))
        storage.failing = set()
        assert (await client.post(f"/callbacks/kling/{TOKEN}", content=body)).status_code == 404
