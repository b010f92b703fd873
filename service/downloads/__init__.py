"""Downloading finished videos: safely, resumably, and only from where videos may come from.

- :mod:`~service.downloads.downloader`: :func:`download_video`, one attempt, end to end;
- :mod:`~service.downloads.fetch`: the HTTP exchanges of a transfer and how answers are judged;
- :mod:`~service.downloads.resume`: ``Range``/``If-Range``, strong ETags, lying ``206``s;
- :mod:`~service.downloads.files`: the stable partial file, its sidecar, commit and cleaning;
- :mod:`~service.downloads.writer`: hashing and writing off the event loop, in batches;
- :mod:`~service.downloads.media`: content types, magic bytes (MP4/MOV), the duration;

The address guard and the guarded transport are :mod:`service.egress`'s.
"""

from __future__ import annotations

from service.downloads.downloader import DownloadLimits, DownloadResult, download_video
from service.downloads.files import (
    PARTIAL_DIR,
    clean_partial_downloads,
    discard_partial,
)
from service.downloads.media import media_type_for

__all__ = [
    "PARTIAL_DIR",
    "DownloadLimits",
    "DownloadResult",
    "clean_partial_downloads",
    "discard_partial",
    "download_video",
    "media_type_for",
]
