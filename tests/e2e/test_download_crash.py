"""A worker killed with SIGKILL in the middle of a large, slowly served download.

After a second worker starts, the video is stored intact (the right SHA-256), resumed from the
kept partial file when the server allows it (strong ETag) or fetched again otherwise, with no
partial file left behind and never a half file at the final path.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from storage.records import DownloadStatus
from storage.sqlite.backend import SQLiteStorage
from tests.downloads.conftest import sha256, video_bytes
from tests.downloads.hostile import Honest, HostileServer
from tests.downloads.seed import seed_download

pytestmark = pytest.mark.e2e

SIZE = 12 * 1024 * 1024
RATE = 5 * 1024 * 1024  # bytes per second: the first worker is killed about half a second in


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 30
) -> None:
    for _ in range(int(timeout * 20)):
        outcome = condition()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen in {timeout}s")


@pytest.mark.parametrize("etag", [None, ""], ids=["strong etag: resumes", "no etag: starts over"])
async def test_a_download_survives_a_killed_worker(tmp_path: Path, etag: str | None) -> None:
    data = video_bytes(SIZE, seed=3)
    media = tmp_path / "media"
    db = tmp_path / "omnihook.db"
    storage = SQLiteStorage(str(db))
    await storage.open()
    env = {
        **os.environ,
        "OMNIHOOK_DATABASE_URL": f"sqlite:///{db}",
        "OMNIHOOK_MEDIA_DIR": str(media),
        "OMNIHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "OMNIHOOK_JOB_LEASE_SECONDS": "1",
        "OMNIHOOK_DOWNLOAD_RETRY_SCHEDULE": "0.1,0.1",
        "OMNIHOOK_KLING_API_KEY": "unused",
    }
    log = tmp_path / "worker.log"
    workers: list[subprocess.Popen[bytes]] = []
    async with HostileServer() as server:
        url = server.add("/big.mp4", data, etag=etag)
        server.script("/big.mp4", Honest(rate=RATE), Honest(rate=8 * RATE))
        task = await seed_download(storage, url)
        final = media / task.id / "0.mp4"
        partial = media / ".partial" / f"{task.id}%2F0.part"
        try:
            workers.append(start_worker(env, log))
            await wait_until(
                lambda: partial.exists() and partial.stat().st_size > 1024 * 1024,
                "the first worker writing",
            )
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            kept = partial.stat().st_size
            assert 0 < kept < SIZE
            assert not final.exists()  # never a half file at the final path

            workers.append(start_worker(env, log))

            async def stored() -> bool:
                [video] = await storage.list_videos(task.id)
                return video.download_status == DownloadStatus.DOWNLOADED

            await wait_until(stored, "the second worker storing the video")
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
                    worker.wait(10)
        [video] = await storage.list_videos(task.id)
        await storage.close()
        requests = server.requests_to("/big.mp4")

    assert video.sha256 == sha256(data), log.read_text()
    assert final.read_bytes() == data
    assert video.size == SIZE and video.path == f"{task.id}/0.mp4"
    assert list((media / ".partial").iterdir()) == []  # no partial garbage left
    assert len(requests) == 2
    second_range = requests[1].range
    if etag is None:
        # The second worker asked only for what the first one had not written.
        assert second_range is not None
        start = int(second_range.removeprefix("bytes=").rstrip("-"))
        assert 0 < start <= kept
    else:
        assert second_range is None  # nothing could be resumed: fetched whole again
