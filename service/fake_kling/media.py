"""The videos the simulator hands out: the packaged sample MP4, made distinct per video id.

Each video is the sample followed by one extra top-level ``free`` box holding the video id. A
``free`` box is skipped by every MP4 reader, so the file stays valid and playable while each
video has its own bytes, sha256 and ETag.
"""

from __future__ import annotations

import hashlib
import struct
import time
from dataclasses import dataclass
from email.utils import formatdate
from importlib import resources

SAMPLE_RESOURCE = "sample.mp4"
FREE_BOX_PREFIX = b"omnihook-fake-kling video_id="


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


@dataclass(frozen=True)
class MediaFile:
    """One video's bytes with the validators the HTTP layer needs."""

    data: bytes
    etag: str
    last_modified: str

    @property
    def size(self) -> int:
        return len(self.data)


class MediaLibrary:
    """Builds each video's bytes once and keeps them for every later request."""

    def __init__(self, sample: bytes) -> None:
        mp4_boxes(sample)  # fail early on a broken asset
        self._sample = sample
        self._files: dict[str, MediaFile] = {}
        self.duration = f"{round(mp4_duration_seconds(sample), 3)}"

    def add(self, video_id: str) -> MediaFile:
        existing = self._files.get(video_id)
        if existing is not None:
            return existing
        data = self._sample + free_box(FREE_BOX_PREFIX + video_id.encode())
        media = MediaFile(
            data=data,
            etag=f'"{hashlib.sha256(data).hexdigest()[:32]}"',
            last_modified=formatdate(time.time(), usegmt=True),
        )
        self._files[video_id] = media
        return media

    def get(self, video_id: str) -> MediaFile | None:
        return self._files.get(video_id)
