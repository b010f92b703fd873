"""Built-in plugin: a JSON "sidecar" beside every stored video.

``/media/.../task_x_0.mp4`` gets ``/media/.../task_x_0.mp4.json`` with what the task was (id,
prompt, model, cost, metadata) and what was stored (duration, size, sha256), so a directory of
videos stays self-describing without the database.

Written atomically (a temp file in the same directory, then ``os.replace``): a reader never sees
half a file, and a retry after a crash simply writes it again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from handlers.api import DoNotRetry, Event, on


@on("video.downloaded")
def write_sidecar(event: Event) -> None:
    """Write ``<video path>.json``; sync on purpose, so its file I/O runs off the event loop."""
    video: Mapping[str, Any] = event.video or {}
    path_text = video.get("path")
    if not isinstance(path_text, str) or not Path(path_text).is_absolute():
        # A payload without an absolute path will not grow one on retry.
        raise DoNotRetry(f"event {event.id} has no absolute data.video.path: {path_text!r}")
    video_path = Path(path_text)
    write_json_atomically(
        video_path.with_name(video_path.name + ".json"), sidecar(event), mode=mode_of(video_path)
    )


def mode_of(video_path: Path) -> int:
    """The permission bits for a file beside the video: readable by whoever reads the video.

    Temp files are created 0600; left so, a web server or a user with access to the media
    directory could read the videos but not what was written beside them.
    """
    try:
        return video_path.stat().st_mode & 0o666
    except FileNotFoundError:
        return 0o644


def sidecar(event: Event) -> dict[str, Any]:
    """The sidecar's content, from a ``video.downloaded`` event."""
    task = event.task
    video: Mapping[str, Any] = event.video or {}
    request = task.get("request") or {}
    return {
        "task_id": task.get("id"),
        "external_task_id": task.get("external_task_id"),
        "video_index": video.get("index"),
        "prompt": request.get("prompt"),
        "model_name": task.get("model_name"),
        "duration": video.get("duration"),
        "size": video.get("size"),
        "sha256": video.get("sha256"),
        "cost": task.get("cost"),
        "metadata": task.get("metadata") or {},
        "event_id": event.id,
    }


def write_json_atomically(path: Path, content: dict[str, Any], *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``content`` as JSON in one step; no temp file is left behind."""
    text = json.dumps(content, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    # Same directory: os.replace is atomic only within one filesystem.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as temp:
            temp.write(text)
            temp.flush()
            os.fsync(temp.fileno())  # the data is on disk before the name points at it
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
