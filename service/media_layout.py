"""Where files are kept under ``OMNIHOOK_MEDIA_DIR``, for every part that reads or writes them.

The dashboard serves what the built-in poster plugin writes: both take the place from here, so
the API needs no plugin to know where a poster is.
"""

from __future__ import annotations

from pathlib import Path


def poster_path(video_path: Path) -> Path:
    """Where the poster of ``video_path`` is kept: beside it, ``<name>.jpg``."""
    return video_path.with_name(video_path.name + ".jpg")
