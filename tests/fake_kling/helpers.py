"""Shared values and builders for the simulator's tests."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

import httpx

BASE = "http://fake-kling.test"
AUTH = {"Authorization": "Bearer test-key"}
CREATE = "/v1/videos/omni-video"
WAIT = 3.0  # seconds any awaited condition may take


def body(prompt: str = "a cat surfing", **fields: Any) -> dict[str, Any]:
    """A valid create body; keyword arguments add or replace fields."""
    return {"model_name": "kling-v3-omni", "prompt": prompt, "duration": "5", **fields}


def top_level_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, payload)`` of each top-level MP4 box (32-bit sizes only, as in the sample)."""
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        assert size >= 8, f"bad box size at {offset}"
        boxes.append((kind, data[offset + 8 : offset + size]))
        offset += size
    assert offset == len(data)
    return boxes


async def eventually(check: Callable[[], bool]) -> None:
    """Wait until ``check()`` holds; fail after ``WAIT`` seconds."""
    async with asyncio.timeout(WAIT):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def wait_final(client: httpx.AsyncClient, task_id: str) -> Any:
    """Poll the query endpoint until the task has ended; returns its ``data``."""
    async with asyncio.timeout(WAIT):
        while True:
            data = (await client.get(f"{CREATE}/{task_id}")).json()["data"]
            if data["task_status"] in ("succeed", "failed"):
                return data
            await asyncio.sleep(0.01)
