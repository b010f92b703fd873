"""Partial files: what survives a crash for a resume, what is cleaned, and who may write."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from pathlib import Path

import pytest

from service.downloads import PARTIAL_DIR, clean_partial_downloads, discard_partial
from service.downloads.files import KEEP_RESUMABLE_SECONDS
from service.errors import DownloadRetryable
from tests.downloads.conftest import Runner, sha256, video_bytes
from tests.downloads.hostile import Honest, HostileServer


def leftover(media: Path, stem: str, data: bytes, meta: dict[str, object] | None) -> Path:
    partial = media / PARTIAL_DIR
    partial.mkdir(parents=True, exist_ok=True)
    path = partial / f"{stem}.part"
    path.write_bytes(data)
    if meta is not None:
        (partial / f"{stem}.meta.json").write_text(json.dumps(meta))
    return path


def names(media: Path) -> list[str]:
    return sorted(p.name for p in (media / PARTIAL_DIR).iterdir())


def test_cleaning_keeps_what_a_retry_will_resume_and_removes_the_rest(tmp_path: Path) -> None:
    assert clean_partial_downloads(tmp_path) == 0  # no .partial directory yet
    leftover(tmp_path, "resumable", b"x" * 10, {"etag": '"e"', "total": 100})
    leftover(tmp_path, "no-sidecar", b"x" * 10, None)  # a server without ETag: starts over
    leftover(tmp_path, "empty", b"", {"etag": '"e"', "total": 100})
    leftover(tmp_path, "too-long", b"x" * 200, {"etag": '"e"', "total": 100})
    leftover(tmp_path, "bad-sidecar", b"x", {"etag": 3})
    partial = tmp_path / PARTIAL_DIR
    (partial / "orphan.meta.json").write_text("{}")
    (partial / "half-written.meta.json.tmp").write_text("{")
    (partial / "notes.txt").write_text("not ours")
    with (partial / "live.part").open("wb") as live:
        fcntl.flock(live.fileno(), fcntl.LOCK_EX)  # a download in progress holds its file
        assert clean_partial_downloads(tmp_path) == 9  # the sidecars of removed files too
    assert names(tmp_path) == ["live.part", "notes.txt", "resumable.meta.json", "resumable.part"]
    assert clean_partial_downloads(tmp_path) == 1  # the live one's holder is gone now


def test_a_resumable_file_nobody_came_back_for_goes_eventually(tmp_path: Path) -> None:
    path = leftover(tmp_path, "old", b"x" * 10, {"etag": '"e"', "total": 100})
    assert clean_partial_downloads(tmp_path) == 0
    later = time.time() + KEEP_RESUMABLE_SECONDS + 60
    assert clean_partial_downloads(tmp_path, now=later) == 2
    assert not path.exists() and names(tmp_path) == []


def test_discard_partial_leaves_a_live_download_alone(tmp_path: Path) -> None:
    path = leftover(tmp_path, "task-1%2F0", b"x", {"etag": '"e"', "total": 100})
    with path.open("rb") as live:
        fcntl.flock(live.fileno(), fcntl.LOCK_EX)
        assert discard_partial(tmp_path, "task-1/0") is False
    assert discard_partial(tmp_path, "task-1/0") is True
    assert names(tmp_path) == []
    assert discard_partial(tmp_path, "task-1/0") is False


async def test_a_second_download_of_the_same_video_backs_off(
    server: HostileServer, run: Runner
) -> None:
    """Two workers on one job (a lease taken over): the second never writes into the file."""
    data = video_bytes(400_000)
    url = server.add("/v.mp4", data)
    server.script("/v.mp4", Honest(rate=1_000_000))
    first = asyncio.create_task(run(url))
    for _ in range(200):
        if (run.partial_dir / "task-1%2F0.part").exists() and server.body_bytes_sent:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(DownloadRetryable, match="another download of this video is running"):
        await run(url)
    result = await first
    assert result.sha256 == sha256(data)
    assert run.leftovers() == []


async def test_stored_files_are_readable_by_others(server: HostileServer, run: Runner) -> None:
    result = await run(server.add("/v.mp4", video_bytes(10_000)))
    assert os.stat(result.path).st_mode & 0o044 == 0o044


def test_starting_writeback_keeps_the_bytes_and_is_only_advice(tmp_path: Path) -> None:
    """The writer's early writeback drops written pages from the cache, never the bytes; on a
    file that takes no advice (a device) it is silently skipped."""
    from service.downloads.files import PartialFile

    partial = PartialFile.open(tmp_path, "v")
    partial.write_all([b"a" * 5000, memoryview(b"b" * 3000)])
    partial.start_writeback()
    assert partial.path.read_bytes() == b"a" * 5000 + b"b" * 3000
    partial.commit(tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == b"a" * 5000 + b"b" * 3000
    if os.path.exists("/dev/full"):
        (tmp_path / PARTIAL_DIR / "w.part").symlink_to("/dev/full")
        device = PartialFile.open(tmp_path, "w")
        device.start_writeback()  # posix_fadvise refuses a device: no error
        device.release(keep=True)
