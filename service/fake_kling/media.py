"""The files the simulator hands out: the packaged sample MP4, made distinct per video id, and
small generated PNG images.

Each video is the sample followed by one extra top-level ``free`` box holding the video id. A
``free`` box is skipped by every MP4 reader, so the file stays valid and playable while each
video has its own bytes, sha256 and ETag. A watermarked copy (``watermark_info.enabled``) is
the same kind of file under its own id, so its bytes differ from the clean one's. An image
output is a real 16x16 PNG whose ``tEXt`` chunk holds its id (a watermarked one is another
colour).
"""

from __future__ import annotations

import hashlib
import struct
import time
import zlib
from dataclasses import dataclass
from email.utils import formatdate
from importlib import resources

from .media_faults import MediaFaults

SAMPLE_RESOURCE = "sample.mp4"
FREE_BOX_PREFIX = b"omnihook-fake-kling video_id="
PNG_TEXT_PREFIX = b"omnihook-fake-kling image_id="
VIDEO_TYPE = "video/mp4"
PNG_TYPE = "image/png"
IMAGE_SIDE = 16  # pixels
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_sample() -> bytes:
    """The packaged sample MP4 (3 s, 320x180, H.264 + AAC)."""
    return resources.files(__package__).joinpath("assets", SAMPLE_RESOURCE).read_bytes()


def mp4_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """Top-level boxes as ``(type, offset, size)``; raises ``ValueError`` on a malformed file."""
    boxes: list[tuple[bytes, int, int]] = []
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            raise ValueError(f"truncated box header at {offset}")
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size == 1:  # 64-bit size follows the type
            (size,) = struct.unpack_from(">Q", data, offset + 8)
        elif size == 0:  # box runs to the end of the file
            size = len(data) - offset
        if size < 8 or offset + size > len(data):
            raise ValueError(f"bad size {size} for box {kind!r} at {offset}")
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def mp4_duration_seconds(data: bytes) -> float:
    """The movie duration from ``moov/mvhd``."""
    for kind, offset, size in mp4_boxes(data):
        if kind != b"moov":
            continue
        child = offset + 8
        while child < offset + size:
            child_size, child_kind = struct.unpack_from(">I4s", data, child)
            if child_kind == b"mvhd":
                version = data[child + 8]
                if version == 1:
                    timescale, duration = struct.unpack_from(">IQ", data, child + 28)
                else:
                    timescale, duration = struct.unpack_from(">II", data, child + 20)
                return float(duration) / float(timescale)
            child += max(child_size, 8)
    raise ValueError("no moov/mvhd box")


def free_box(payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), b"free") + payload


def png_image(text: bytes, rgb: tuple[int, int, int]) -> bytes:
    """A valid :data:`IMAGE_SIDE`-pixel square PNG of one colour, ``text`` in a ``tEXt`` chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", IMAGE_SIDE, IMAGE_SIDE, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = b"".join(b"\x00" + bytes(rgb) * IMAGE_SIDE for _ in range(IMAGE_SIDE))
    return (
        _PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00" + text)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class ServedCounts:
    """What the media route answered for one video: tests check "downloaded exactly once"."""

    full: int = 0  # GET answered 200 with the whole file
    partial: int = 0  # GET answered 206 with a range of it
    refused: int = 0  # answered 403 as expired ([sim:media=expire])


@dataclass(frozen=True)
class MediaFile:
    """One file's bytes with the validators the HTTP layer needs."""

    data: bytes
    etag: str
    last_modified: str
    media_type: str = VIDEO_TYPE

    @property
    def size(self) -> int:
        return len(self.data)


class MediaLibrary:
    """Builds each file's bytes once and keeps them for every later request."""

    def __init__(self, sample: bytes) -> None:
        mp4_boxes(sample)  # fail early on a broken asset
        self._sample = sample
        self._files: dict[str, MediaFile] = {}
        self.faults = MediaFaults()  # [sim:media=...], per file
        self.served: dict[str, ServedCounts] = {}  # video id -> what was served of it
        self.duration = f"{round(mp4_duration_seconds(sample), 3)}"

    def add(self, video_id: str) -> MediaFile:
        """The video named ``video_id`` (a watermarked copy is a video of its own id)."""
        return self._keep(video_id, self._sample + free_box(FREE_BOX_PREFIX + video_id.encode()))

    def add_image(self, image_id: str, *, watermarked: bool = False) -> MediaFile:
        """The PNG image named ``image_id``; a watermarked copy is another colour."""
        rgb = (200, 40, 40) if watermarked else (40, 120, 200)
        data = png_image(PNG_TEXT_PREFIX + image_id.encode(), rgb)
        return self._keep(image_id, data, PNG_TYPE)

    def _keep(self, media_id: str, data: bytes, media_type: str = VIDEO_TYPE) -> MediaFile:
        existing = self._files.get(media_id)
        if existing is not None:
            return existing
        media = MediaFile(
            data=data,
            etag=f'"{hashlib.sha256(data).hexdigest()[:32]}"',
            last_modified=formatdate(time.time(), usegmt=True),
            media_type=media_type,
        )
        self._files[media_id] = media
        return media

    def get(self, video_id: str) -> MediaFile | None:
        return self._files.get(video_id)
