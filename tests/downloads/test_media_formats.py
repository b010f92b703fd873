"""Telling a stored output's format from its first bytes, and its content type from its name."""

from __future__ import annotations

import pytest

from service.downloads.media import JPEG, MOV, MP4, PNG, WEBP, media_type_for, sniff
from service.fake_kling.media import PNG_TEXT_PREFIX, png_image
from tests.downloads.conftest import SAMPLE, quicktime_bytes


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (SAMPLE[:12], MP4),
        (quicktime_bytes()[:12], MOV),
        (png_image(PNG_TEXT_PREFIX + b"x", (0, 0, 0))[:12], PNG),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", JPEG),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", WEBP),
        (b"<!doctype html>", None),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),
        (b"\x89PN", None),
    ],
)
def test_sniff(head: bytes, expected: object) -> None:
    assert sniff(head) == expected


def test_kinds() -> None:
    assert {MP4.kind, MOV.kind} == {"video"}
    assert {PNG.kind, JPEG.kind, WEBP.kind} == {"image"}


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("t/0.mp4", "video/mp4"),
        ("t/0.watermarked.mov", "video/quicktime"),
        ("t/1.png", "image/png"),
        ("t/1.JPG", "image/jpeg"),
        ("t/1.webp", "image/webp"),
    ],
)
def test_media_type_for(name: str, media_type: str) -> None:
    assert media_type_for(name) == media_type
