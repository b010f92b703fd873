"""SQLite point reads on the event loop's thread, and the way back to the reader's thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import StorageError
from storage.records import TaskChange, TaskStatus
from storage.sqlite.backend import SQLiteStorage
from storage.sqlite.inline import InlineReader
from tests.factories import make_event, make_job, make_notification, make_task, make_video
from tests.storage.test_webhooks import dispatch, make_endpoint


async def _storage_with_a_delivery(path: Path) -> tuple[SQLiteStorage, str]:
    storage = SQLiteStorage(str(path))
    await storage.open()
    await storage.create_endpoint(make_endpoint())
    task = make_task(status=TaskStatus.SUCCEEDED)
    await storage.create_task(task)
    event = make_event(task.id, key="k")
    assert await storage.apply(TaskChange(task, events=[event]))
    await dispatch(storage, event)
    [delivery] = await storage.list_deliveries(task_id=task.id)
    return storage, delivery.id


def test_it_answers_only_while_started_and_never_for_memory(tmp_path: Path) -> None:
    reader = InlineReader(str(tmp_path / "x.db"))
    assert reader.fetch("SELECT 1") is None  # its storage is not open yet
    reader.start()
    rows = reader.fetch("SELECT 41 + 1")
    assert rows is not None and rows[0][0] == 42
    reader.close()
    assert reader.fetch("SELECT 1") is None
    memory = InlineReader(":memory:")
    memory.start()
    assert memory.fetch("SELECT 1") is None  # a second connection would be another database


def test_an_error_answers_none_and_the_next_read_opens_again(tmp_path: Path) -> None:
    reader = InlineReader(str(tmp_path / "x.db"))
    reader.start()
    assert reader.fetch("SELECT * FROM missing") is None
    rows = reader.fetch("SELECT 1")
    assert rows is not None and rows[0][0] == 1
    assert reader.fetch("CREATE TABLE t (x)") is None  # read-only
    reader.close()


async def test_a_delivery_is_read_inline_or_through_the_thread_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, delivery_id = await _storage_with_a_delivery(tmp_path / "o.db")
    try:
        inline = await storage.get_delivery_parts(delivery_id)
        monkeypatch.setattr(storage._inline, "fetch", lambda sql, parameters=(): None)
        threaded = await storage.get_delivery_parts(delivery_id)
        assert inline is not None and inline == threaded
        assert inline.endpoint is not None and inline.event is not None
    finally:
        await storage.close()


async def test_a_closed_storage_reads_nothing_inline(tmp_path: Path) -> None:
    storage, delivery_id = await _storage_with_a_delivery(tmp_path / "o.db")
    await storage.close()
    with pytest.raises(StorageError, match="not open"):
        await storage.get_delivery_parts(delivery_id)


async def test_what_an_inbox_job_reads_is_read_inline_or_through_the_thread_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = SQLiteStorage(str(tmp_path / "o.db"))
    await storage.open()
    try:
        task = make_task(callback_token_hash="h" * 64)
        await storage.create_task(task)
        notification = make_notification(task.id)
        await storage.record_notification(notification, make_job(task_id=task.id))
        assert await storage.apply(TaskChange(task, videos=[make_video(task.id)]))

        async def reads() -> tuple[object, ...]:
            return (
                await storage.get_task(task.id),
                await storage.get_task(task.external_task_id),
                await storage.get_task_by_token_hash("h" * 64),
                await storage.get_notification(notification.id),
                await storage.list_videos(task.id),
            )

        def no_thread() -> None:
            raise AssertionError("read through the thread")

        with monkeypatch.context() as patched:
            patched.setattr(storage, "_read", no_thread)
            inline = await reads()
        monkeypatch.setattr(storage._inline, "fetch", lambda sql, parameters=(): None)
        threaded = await reads()
        assert inline == threaded
        assert inline[0] == task and inline[3] == notification
        assert inline[4] == [make_video(task.id)]
    finally:
        await storage.close()
