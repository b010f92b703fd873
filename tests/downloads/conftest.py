"""Fixtures of the downloader's tests: videos to serve, the hostile server, a download runner."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.downloads import (
    PARTIAL_DIR,
    DownloadLimits,
    DownloadResult,
    download_video,
)
from service.downloads.downloader import UrlRefresher
from service.egress import GuardedTransport
from service.fake_kling.media import free_box, load_sample, mp4_boxes
from tests.downloads.hostile import HostileServer

SAMPLE = load_sample()
NAME = "task-1/0"


def video_bytes(size: int = 600_000, *, seed: int = 0) -> bytes:
    """A playable MP4 (the sample) padded with a ``free`` box of random bytes to ``size``."""
    padding = max(0, size - len(SAMPLE) - 8)
    return SAMPLE + free_box(random.Random(seed).randbytes(padding))


def quicktime_bytes() -> bytes:
    """The sample as a QuickTime file: an ``ftyp`` of brand ``qt  `` and the same boxes."""
    ftyp = b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  "
    rest = b"".join(
        SAMPLE[offset : offset + size]
        for kind, offset, size in mp4_boxes(SAMPLE)
        if kind != b"ftyp"
    )
    return ftyp + rest


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def limits(**overrides: Any) -> DownloadLimits:
    fields: dict[str, Any] = {
        "max_bytes": 50_000_000,
        "deadline": 20.0,
        "allow_private": True,
        "resume_backoff": 0.0,
    }
    fields.update(overrides)
    return DownloadLimits(**fields)


@dataclass
class Runner:
    """Runs download_video into one media directory, remembering the progress it reported.

    Without a ``transport`` it goes through the worker's own (:class:`GuardedTransport`, private
    addresses allowed for the loopback server)."""

    media_dir: Path
    progress: list[tuple[int, int | None]] = field(default_factory=list)

    async def __call__(
        self,
        url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        refresh_url: UrlRefresher | None = None,
        name: str = NAME,
        **limit_overrides: Any,
    ) -> DownloadResult:
        async def record(received: int, total: int | None) -> None:
            self.progress.append((received, total))

        transport = transport or GuardedTransport(allow_private=True)
        async with httpx.AsyncClient(transport=transport, timeout=10) as http:
            return await download_video(
                http,
                url,
                media_dir=self.media_dir,
                name=name,
                limits=limits(**limit_overrides),
                refresh_url=refresh_url,
                on_progress=record,
            )

    @property
    def partial_dir(self) -> Path:
        return self.media_dir / PARTIAL_DIR

    def leftovers(self) -> list[str]:
        return (
            sorted(p.name for p in self.partial_dir.iterdir()) if self.partial_dir.exists() else []
        )

    def stored(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.media_dir))
            for p in self.media_dir.rglob("*")
            if p.is_file() and PARTIAL_DIR not in p.parts
        )


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path / "media")


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as hostile:
        yield hostile
