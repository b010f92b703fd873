"""The built-in sidecar plugin: ``<video path>.json`` beside each stored video."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from handlers import DoNotRetry, Event, VideoData
from handlers.builtin.sidecar import write_sidecar
from handlers.registry import build_registry
from handlers.runner import run_handler
from tests.factories import task_data


def downloaded(video_path: Path | str | None, **task: Any) -> Event:
    video: dict[str, Any] = {
        "index": 0,
        "provider_video_id": "vid_1",
        "duration": "5",
        "download_status": "downloaded",
        "size": 1234,
        "sha256": "ab" * 32,
        "path": None if video_path is None else str(video_path),
    }
    return Event(
        id="evt_1",
        type="video.downloaded",
        timestamp=datetime(2025, 1, 1, tzinfo=UTC),
        data={
            "task": task_data(
                **{
                    "id": "task_1",
                    "external_task_id": "order-42",
                    "status": "succeeded",
                    "model_name": "kling-video-o1",
                    "request": {"prompt": "a cat surfing", "mode": "pro"},
                    "metadata": {"customer": "ünïcode"},
                    "cost": "0.8",
                    **task,
                }
            ),
            "video": cast(VideoData, video),
        },
    )


def test_the_sidecar_is_a_builtin_plugin_on_video_downloaded() -> None:
    registry = build_registry([], entry_points=False)

    [handler] = [h for h in registry.handlers_for("video.downloaded") if h.func is write_sidecar]

    assert handler.source == "builtin"
    assert registry.handlers_for("task.completed") == []


def test_it_writes_the_json_beside_the_video(tmp_path: Path) -> None:
    video = tmp_path / "task_1_0.mp4"
    video.write_bytes(b"video")

    write_sidecar(downloaded(video))

    assert json.loads((tmp_path / "task_1_0.mp4.json").read_text(encoding="utf-8")) == {
        "task_id": "task_1",
        "external_task_id": "order-42",
        "video_index": 0,
        "prompt": "a cat surfing",
        "model_name": "kling-video-o1",
        "duration": "5",
        "size": 1234,
        "sha256": "ab" * 32,
        "cost": "0.8",
        "metadata": {"customer": "ünïcode"},
        "event_id": "evt_1",
    }
    assert video.read_bytes() == b"video"


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_the_sidecar_is_as_readable_as_the_video(tmp_path: Path, mode: int) -> None:
    video = tmp_path / "task_1_0.mp4"
    video.write_bytes(b"video")
    video.chmod(mode)

    write_sidecar(downloaded(video))

    assert (tmp_path / "task_1_0.mp4.json").stat().st_mode & 0o777 == mode


def test_a_missing_prompt_is_null(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"

    write_sidecar(downloaded(video, request={"image_list": []}, metadata=None))

    content = json.loads((tmp_path / "v.mp4.json").read_text(encoding="utf-8"))
    assert content["prompt"] is None
    assert content["metadata"] == {}


def test_it_replaces_an_old_sidecar_atomically(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    sidecar = tmp_path / "v.mp4.json"
    sidecar.write_text("{}")
    old_inode = sidecar.stat().st_ino

    write_sidecar(downloaded(video))

    # A new file took the name (temp file + os.replace), not a rewrite in place that a reader
    # could catch half done; and no temp file is left behind.
    assert sidecar.stat().st_ino != old_inode
    assert json.loads(sidecar.read_text(encoding="utf-8"))["task_id"] == "task_1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4.json"]


def test_a_failed_write_leaves_the_old_sidecar_and_no_temp_file(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    sidecar = tmp_path / "v.mp4.json"
    sidecar.write_text('{"old": true}')

    with pytest.raises(TypeError):
        write_sidecar(downloaded(video, metadata={"not json": object()}))

    assert sidecar.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4.json"]


@pytest.mark.parametrize("path", [None, "relative/v.mp4"])
def test_an_event_without_an_absolute_path_is_not_retried(path: str | None) -> None:
    with pytest.raises(DoNotRetry, match=r"no absolute data\.video\.path"):
        write_sidecar(downloaded(path))


async def test_it_runs_through_the_runner(tmp_path: Path) -> None:
    registry = build_registry([], entry_points=False)
    handler = registry.get("handlers.builtin.sidecar:write_sidecar")

    await run_handler(handler, downloaded(tmp_path / "v.mp4"), default_timeout=5)

    assert (tmp_path / "v.mp4.json").is_file()
