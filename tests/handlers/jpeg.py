"""Reading a JPEG's size without an image library: enough to check what ffmpeg wrote."""

from __future__ import annotations

import struct

# The start and end of every JPEG file, and the start-of-frame markers that carry its size.
SOI, EOI = b"\xff\xd8", b"\xff\xd9"
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG's start-of-frame segment: no image library needed."""
    assert data[:2] == SOI, "not a JPEG: no SOI marker"
    offset = 2
    while offset + 4 <= len(data):
        assert data[offset] == 0xFF, f"not a JPEG segment at {offset}"
        marker = data[offset + 1]
        (length,) = struct.unpack_from(">H", data, offset + 2)
        if marker in SOF_MARKERS:
            height, width = struct.unpack_from(">HH", data, offset + 5)
            return width, height
        offset += 2 + length
    raise AssertionError("no start-of-frame segment")
