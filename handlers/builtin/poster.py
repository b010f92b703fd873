"""Built-in plugin: a poster frame (a JPEG still) beside every stored video.

``/media/task_x/0.mp4`` gets ``/media/task_x/0.mp4.jpg``: the frame about one second in (the
opening frame is often black or a fade), or the first frame of a shorter video. The dashboard
shows it as the ``poster`` of its ``<video>`` and ``GET /v1/tasks/{id}/videos/{n}/poster`` serves
it, so users get a thumbnail without downloading the video.

The still is cut by ffmpeg, the one that the ``imageio-ffmpeg`` package installs from the package
registry (no system ffmpeg is assumed), run as a subprocess under a timeout. The handler is sync
on purpose: the subprocess and the file I/O then run in the handler's own thread, off the event
loop. The JPEG is written to a temp file in the same directory and renamed into place, so a
reader never sees half an image and a retry after a crash simply writes it again. The run holds
an advisory lock on its temp file while it writes; a run killed mid-write (SIGKILL) leaves its
temp file unlocked, and the retry removes it before writing its own.

An image output (``video["kind"] == "image"``) is its own thumbnail: it gets no poster.

A video ffmpeg cannot decode will not decode on a retry either: that is :class:`DoNotRetry`.
A missing ffmpeg or a timeout may be passing trouble and is retried on the schedule.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from handlers.api import DoNotRetry, Event, on
from service.media_layout import poster_path

try:
    import fcntl
except ImportError:  # not on Windows: there a killed run's temp file is left behind
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

#: Where the still is taken, in seconds from the start (when the video is that long).
POSTER_AT_SECONDS: Final = 1.0
#: How long one ffmpeg call may take before it is killed; a still needs well under a second.
FFMPEG_TIMEOUT: Final = 30.0
#: What ``ffmpeg -q:v`` calls quality: 2 (best) .. 31 (worst); 3 is visually lossless.
JPEG_QUALITY: Final = 3


# Up to two ffmpeg calls (at 1 s, then at 0 s), plus slack for writing the file.
@on("video.downloaded", timeout=2 * FFMPEG_TIMEOUT + 15)
def write_poster(event: Event) -> None:
    """Write ``<video path>.jpg`` for the stored video of a ``video.downloaded`` event."""
    video = event.video
    if video is not None and video.get("kind") == "image":
        return  # an image is its own thumbnail
    path_text = video.get("path") if video is not None else None
    if not isinstance(path_text, str) or not Path(path_text).is_absolute():
        # A payload without an absolute path will not grow one on retry.
        raise DoNotRetry(f"event {event.id} has no absolute data.video.path: {path_text!r}")
    video_path = Path(path_text)
    if not video_path.is_file():
        raise DoNotRetry(f"the stored video {str(video_path)!r} is missing")
    poster = poster_path(video_path)
    write_poster_file(video_path, poster)
    logger.debug(
        "wrote the poster %s",
        poster,
        extra={"action": "poster_written", "event_id": event.id},
    )


def ffmpeg_executable() -> str:
    """The ffmpeg binary of ``imageio-ffmpeg`` (or ``IMAGEIO_FFMPEG_EXE`` when set)."""
    # Imported here: only a process that actually cuts posters pays for the import.
    import imageio_ffmpeg  # type: ignore[import-untyped]

    exe: str = imageio_ffmpeg.get_ffmpeg_exe()  # RuntimeError when none is found: retried
    return exe


def write_poster_file(
    video: Path, poster: Path, *, at: float = POSTER_AT_SECONDS, ffmpeg: str | None = None
) -> None:
    """Replace ``poster`` with a JPEG of ``video``'s frame at ``at`` seconds (else its first).

    Raises :class:`DoNotRetry` when ffmpeg cannot get a frame out of the file.
    """
    exe = ffmpeg or ffmpeg_executable()
    remove_abandoned_temps(poster)
    # Same directory: os.replace is atomic only within one filesystem.
    fd, temp_name = tempfile.mkstemp(dir=poster.parent, prefix=f".{poster.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        if fcntl is not None:  # held until closed: the temp file is this run's, in use
            fcntl.flock(fd, fcntl.LOCK_EX)
        problem = _extract_frame(exe, video, temp, at=at)
        if problem is not None and at > 0:
            # Most likely shorter than `at` seconds: ffmpeg found no frame there.
            problem = _extract_frame(exe, video, temp, at=0.0)
        if problem is not None:
            raise DoNotRetry(f"ffmpeg cannot take a frame of {video.name}: {problem}")
        with temp.open("rb") as written:
            os.fsync(written.fileno())  # the data is on disk before the name points at it
        # mkstemp made it 0600: whoever may read the video may read its poster.
        os.chmod(temp, video.stat().st_mode & 0o666)
        os.replace(temp, poster)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def remove_abandoned_temps(poster: Path) -> int:
    """Remove the temp files of ``poster`` that no running write holds (left by a run that was
    killed); how many went. One another process is writing right now is locked and kept."""
    if fcntl is None:
        return 0
    removed = 0
    for leftover in poster.parent.glob(f".{glob.escape(poster.name)}.*.tmp"):
        try:
            with leftover.open("rb") as probe:
                try:
                    fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a run in another thread or process is writing it
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
                    removed += 1
        except FileNotFoundError:
            continue  # renamed into place or removed meanwhile
    return removed


def _extract_frame(exe: str, video: Path, output: Path, *, at: float) -> str | None:
    """Write one JPEG frame of ``video`` at ``at`` seconds to ``output``; None, or the problem."""
    command = [
        exe,
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        *(["-ss", f"{at:g}"] if at > 0 else []),  # before -i: a fast, frame-accurate seek
        "-i",
        str(video),
        "-frames:v",
        "1",
        "-an",
        "-f",
        "mjpeg",  # one frame of the mjpeg muxer is exactly one JPEG file
        "-q:v",
        str(JPEG_QUALITY),
        "-y",
        str(output),
    ]
    # TimeoutExpired propagates (the child is killed first): a slow machine may do better later.
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=FFMPEG_TIMEOUT,
        check=False,
    )
    if result.returncode == 0 and output.stat().st_size > 0:
        return None
    lines = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
    reason = lines[-1].strip() if lines else "no frame was written"
    return f"{reason[:300]} (exit status {result.returncode})"
