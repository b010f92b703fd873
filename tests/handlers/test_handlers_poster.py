"""The built-in poster plugin: ``<video path>.jpg``, a still of each stored video."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from handlers import DoNotRetry, Event
from handlers.builtin.poster import (
    ffmpeg_executable,
    remove_abandoned_temps,
    write_poster,
    write_poster_file,
)
from handlers.errors import HandlerFailed, HandlerGaveUp
from handlers.registry import build_registry
from handlers.runner import run_handler
from service.fake_kling.media import PNG_TEXT_PREFIX, png_image
from service.media_layout import poster_path
from tests.factories import task_data, video_data
from tests.handlers.jpeg import EOI, SOI, jpeg_size

SAMPLE = Path(__file__).parents[2] / "service" / "fake_kling" / "assets" / "sample.mp4"


def downloaded(path: Path | str | None) -> Event:
    return Event(
        id="evt_poster",
        type="video.downloaded",
        timestamp=datetime(2025, 1, 1, tzinfo=UTC),
        data={
            "task": task_data(id="task_1"),
            "video": video_data(index=0, path=None if path is None else str(path)),
        },
    )


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A stored copy of the simulated provider's sample MP4 (3 s, 320x180)."""
    stored = tmp_path / "0.mp4"
    shutil.copyfile(SAMPLE, stored)
    return stored


def synthetic_video(path: Path, seconds: float) -> Path:
    """A test-pattern video whose frames differ over time (it shows a running counter)."""
    subprocess.run(
        [
            ffmpeg_executable(),
            *("-hide_banner", "-loglevel", "error", "-f", "lavfi"),
            *("-i", "testsrc=size=64x48:rate=10", "-t", f"{seconds}"),
            *("-pix_fmt", "yuv420p", "-y", str(path)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path


def test_the_poster_is_a_builtin_plugin_on_video_downloaded() -> None:
    registry = build_registry([], entry_points=False)

    handlers = registry.handlers_for("video.downloaded")

    assert write_poster in [h.func for h in handlers]
    [poster] = [h for h in handlers if h.func is write_poster]
    assert poster.source == "builtin"
    assert poster.timeout is not None and poster.timeout >= 60  # two ffmpeg calls fit


def test_it_writes_a_jpeg_of_the_video_beside_it(video: Path) -> None:
    write_poster(downloaded(video))

    poster = video.with_name("0.mp4.jpg")
    assert poster_path(video) == poster
    data = poster.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and data.endswith(EOI)
    assert jpeg_size(data) == (320, 180)  # the sample's own size
    assert sorted(p.name for p in video.parent.iterdir()) == ["0.mp4", "0.mp4.jpg"]  # no temp


def test_the_still_is_taken_about_a_second_in(tmp_path: Path) -> None:
    video = synthetic_video(tmp_path / "counter.mp4", 2.0)
    first = tmp_path / "first.jpg"
    write_poster_file(video, first, at=0)

    write_poster(downloaded(video))

    assert poster_path(video).read_bytes() != first.read_bytes()


def test_a_video_shorter_than_a_second_gets_its_first_frame(tmp_path: Path) -> None:
    video = synthetic_video(tmp_path / "short.mp4", 0.4)
    first = tmp_path / "first.jpg"
    write_poster_file(video, first, at=0)

    write_poster(downloaded(video))

    assert poster_path(video).read_bytes() == first.read_bytes()
    assert jpeg_size(first.read_bytes()) == (64, 48)


@pytest.mark.skipif(fcntl is None, reason="advisory locks are POSIX")
def test_a_killed_runs_temp_file_is_removed_by_the_retry_but_a_running_ones_is_kept(
    video: Path,
) -> None:
    poster = poster_path(video)
    abandoned = video.with_name(f".{poster.name}.k1ll3d.tmp")  # its run was SIGKILLed
    abandoned.write_bytes(b"half a jpeg")
    running = video.with_name(f".{poster.name}.busy.tmp")  # another run writes it now
    other = video.with_name(".1.mp4.jpg.x.tmp")  # another video's: not this poster's business
    other.write_bytes(b"")
    with running.open("wb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)

        write_poster(downloaded(video))

        assert not abandoned.exists()
        assert running.exists() and other.exists()
    assert poster.read_bytes()[:2] == SOI
    assert remove_abandoned_temps(poster) == 1  # unlocked now: the next run removes it
    assert not running.exists()


def test_an_old_poster_is_replaced(video: Path) -> None:
    poster_path(video).write_bytes(b"old")

    write_poster(downloaded(video))

    assert poster_path(video).read_bytes()[:2] == SOI


def test_an_undecodable_video_is_not_retried_and_leaves_no_file(tmp_path: Path) -> None:
    video = tmp_path / "0.mp4"
    video.write_bytes(b"this is not an mp4 at all")
    poster_path(video).write_bytes(b"old")

    with pytest.raises(DoNotRetry, match=r"ffmpeg cannot take a frame of 0\.mp4: .*exit status"):
        write_poster(downloaded(video))

    assert poster_path(video).read_bytes() == b"old"  # the previous poster is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.mp4", "0.mp4.jpg"]


@pytest.mark.parametrize("path", [None, "relative/0.mp4", "/no/such/dir/0.mp4"])
def test_an_event_without_a_stored_file_is_not_retried(path: str | None) -> None:
    with pytest.raises(DoNotRetry):
        write_poster(downloaded(path))


def test_a_missing_ffmpeg_is_worth_retrying(video: Path) -> None:
    # Not DoNotRetry: installing ffmpeg (or fixing IMAGEIO_FFMPEG_EXE) fixes it for a retry.
    with pytest.raises(FileNotFoundError):
        write_poster_file(video, poster_path(video), ffmpeg=str(video.parent / "no-ffmpeg"))
    assert not poster_path(video).exists()


async def test_through_the_runner_failures_are_classified(video: Path, tmp_path: Path) -> None:
    [poster] = [h for h in build_registry([], entry_points=False) if h.func is write_poster]

    await run_handler(poster, downloaded(video), default_timeout=5)
    assert jpeg_size(poster_path(video).read_bytes()) == (320, 180)

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(HandlerGaveUp, match="ffmpeg cannot take a frame"):
        await run_handler(poster, downloaded(broken), default_timeout=5)
    assert not issubclass(HandlerGaveUp, HandlerFailed)  # so the worker never retries it


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_the_poster_is_as_readable_as_the_video(video: Path, mode: int) -> None:
    video.chmod(mode)

    write_poster(downloaded(video))

    assert poster_path(video).stat().st_mode & 0o777 == mode


def test_an_image_output_gets_no_poster(tmp_path: Path) -> None:
    image = tmp_path / "1.png"
    image.write_bytes(png_image(PNG_TEXT_PREFIX + b"1", (0, 0, 0)))
    event = downloaded(image)
    event.data["video"]["kind"] = "image"

    write_poster(event)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.png"]
