"""Serving videos: distinct valid MP4 bytes, ETag, Range, If-Range, HEAD."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from service.fake_kling.media import FREE_BOX_PREFIX, MediaLibrary, load_sample
from service.fake_kling.media_http import Unsatisfiable, parse_range

from .helpers import CREATE, body, top_level_boxes, wait_final


@pytest.fixture
async def videos(client: httpx.AsyncClient) -> list[dict[str, str]]:
    created = await client.post(CREATE, json=body("[sim:videos=2]"))
    data = await wait_final(client, created.json()["data"]["task_id"])
    result: list[dict[str, str]] = data["task_result"]["videos"]
    return result


async def test_full_get_is_a_valid_distinct_mp4(
    client: httpx.AsyncClient, videos: list[dict[str, str]]
) -> None:
    bodies = []
    for video in videos:
        response = await client.get(video["url"])
        assert response.status_code == 200
        assert response.headers["content-type"] == "video/mp4"
        assert response.headers["accept-ranges"] == "bytes"
        assert int(response.headers["content-length"]) == len(response.content)
        etag = response.headers["etag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        boxes = top_level_boxes(response.content)
        assert boxes[0][0] == b"ftyp"
        assert boxes[-1] == (b"free", FREE_BOX_PREFIX + video["id"].encode())
        assert {b"moov", b"mdat"} <= {kind for kind, _ in boxes}
        assert response.content.startswith(load_sample())
        bodies.append(response.content)
    assert hashlib.sha256(bodies[0]).digest() != hashlib.sha256(bodies[1]).digest()


async def test_same_bytes_and_etag_every_time(
    client: httpx.AsyncClient, videos: list[dict[str, str]]
) -> None:
    first = await client.get(videos[0]["url"])
    again = await client.get(f"/kling/media/{videos[0]['id']}.mp4")
    assert first.content == again.content
    assert first.headers["etag"] == again.headers["etag"]


async def test_head(client: httpx.AsyncClient, videos: list[dict[str, str]]) -> None:
    full = await client.get(videos[0]["url"])
    head = await client.head(videos[0]["url"])
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == full.headers["content-length"]
    assert head.headers["etag"] == full.headers["etag"]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-50", None, None)],
)
async def test_range(
    client: httpx.AsyncClient,
    videos: list[dict[str, str]],
    header: str,
    start: int | None,
    end: int | None,
) -> None:
    full = (await client.get(videos[0]["url"])).content
    size = len(full)
    response = await client.get(videos[0]["url"], headers={"Range": header})
    assert response.status_code == 206
    first = start if start is not None else size - 50
    last = end if end is not None else size - 1
    assert response.headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert response.content == full[first : last + 1]
    assert int(response.headers["content-length"]) == last - first + 1


async def test_unsatisfiable_range(client: httpx.AsyncClient, videos: list[dict[str, str]]) -> None:
    size = int((await client.head(videos[0]["url"])).headers["content-length"])
    response = await client.get(videos[0]["url"], headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"


async def test_if_range(client: httpx.AsyncClient, videos: list[dict[str, str]]) -> None:
    url = videos[0]["url"]
    etag = (await client.head(url)).headers["etag"]
    matching = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert matching.status_code == 206 and len(matching.content) == 10
    stale = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200
    assert len(stale.content) == int(stale.headers["content-length"]) > 10
    assert "content-range" not in stale.headers


async def test_if_none_match(client: httpx.AsyncClient, videos: list[dict[str, str]]) -> None:
    etag = (await client.head(videos[0]["url"])).headers["etag"]
    response = await client.get(videos[0]["url"], headers={"If-None-Match": etag})
    assert response.status_code == 304


async def test_unknown_video_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/media/123.mp4")
    assert response.status_code == 404
    assert response.json()["code"] == 1203


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 0)),
        ("bytes=5-1000", (5, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=9-3", None),
    ],
)
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0"])
def test_parse_range_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


def test_library_caches_bytes() -> None:
    library = MediaLibrary(load_sample())
    assert library.add("1") is library.add("1")
    assert library.get("1") is not None and library.get("2") is None
    assert library.duration == "3.0"
