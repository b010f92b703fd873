"""The callback route is matched ahead of the rest of the app (service.api.callbacks_first):
what the skipped layers did for it still holds."""

from __future__ import annotations

from pathlib import Path

from storage.memory.backend import MemoryStorage
from storage.records import JobRecord, NotificationRecord
from tests.receiver_support import kling_task, open_receiver

TOKEN = "tok-" + "r" * 40


def _count(metrics: str, status: int) -> float:
    line = f'omnihook_http_requests_total{{endpoint="receive_notification",status="{status}"}}'
    found = [row for row in metrics.splitlines() if row.startswith(line)]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


async def test_callbacks_are_counted_and_timed_under_their_endpoint(tmp_path: Path) -> None:
    async with open_receiver(tmp_path) as receiver:
        await receiver.add_task(TOKEN)
        assert (await receiver.post(TOKEN, kling_task("kt-1", "processing"))).status_code == 200
        assert (await receiver.post(TOKEN, kling_task("kt-1", "processing"))).status_code == 200
        assert (await receiver.post("no-such-token", kling_task("kt-1", "x"))).status_code == 404
        metrics = (await receiver.client.get("/metrics")).text
    assert _count(metrics, 200) == 2
    assert _count(metrics, 404) == 1
    assert TOKEN not in metrics
    assert (
        'omnihook_http_request_duration_seconds_count{endpoint="receive_notification"} 3.0'
        in metrics
    )


async def test_another_method_on_a_callback_url_is_405(tmp_path: Path) -> None:
    async with open_receiver(tmp_path) as receiver:
        await receiver.add_task(TOKEN)
        answer = await receiver.client.get(f"/callbacks/kling/{TOKEN}")
        assert answer.status_code == 405
        assert answer.json()["error"] == "method_not_allowed"
        assert answer.headers["allow"] == "POST"


async def test_a_callback_url_with_more_path_is_not_a_callback(tmp_path: Path) -> None:
    async with open_receiver(tmp_path) as receiver:
        task = await receiver.add_task(TOKEN)
        body = kling_task("kt-1", "processing")
        for path in (f"/callbacks/kling/{TOKEN}/more", "/callbacks/kling/", "/callbacks/kling"):
            answer = await receiver.client.post(path, json=body)
            assert answer.status_code in (404, 307), path
        assert await receiver.services.storage.list_notifications(task.id) == []


class Crashing(MemoryStorage):
    """A bug, not a database outage: not a StorageError."""

    async def record_notification(self, notification: NotificationRecord, job: JobRecord) -> None:
        raise RuntimeError("a bug")


async def test_an_unexpected_error_is_a_500_and_counted_as_one(tmp_path: Path) -> None:
    async with open_receiver(tmp_path, storage=Crashing(), raise_app_exceptions=False) as receiver:
        await receiver.add_task(TOKEN)
        answer = await receiver.post(TOKEN, kling_task("kt-1", "processing"))
        assert answer.status_code == 500
        assert _count((await receiver.client.get("/metrics")).text, 500) == 1
