"""The handler host belongs to the process's Services: sized by the settings, closed with them."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from handlers import Event, on
from handlers.errors import HandlerFailed
from handlers.registry import HandlerRegistry
from handlers.runner import run_handler
from service.bootstrap import open_services
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from tests.factories import task_data

EVENT = Event(
    id="evt_1",
    type="task.failed",
    timestamp=datetime(2025, 1, 1, tzinfo=UTC),
    data={"task": task_data(id="task_1")},
    attempt=1,
)


async def test_the_services_host_is_sized_by_handler_threads_and_closed_with_them(
    tmp_path: Path,
) -> None:
    lock = threading.Lock()
    running = most = 0

    @on("task.failed", timeout=10)
    def busy(event: Event) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.1)
        with lock:
            running -= 1

    handler = HandlerRegistry().register(busy, source="test")
    settings = load_settings(
        database_url="memory://", media_dir=tmp_path / "media", kling_api_key="k", handler_threads=2
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    async with open_services(
        settings, storage=MemoryStorage(), registry=HandlerRegistry(), transport=transport
    ) as services:
        host = services.handler_host
        await asyncio.gather(
            *(run_handler(handler, EVENT, default_timeout=10, host=host) for _ in range(6))
        )

    assert most == 2
    with pytest.raises(HandlerFailed, match="closed"):
        await run_handler(handler, EVENT, default_timeout=5, host=host)
