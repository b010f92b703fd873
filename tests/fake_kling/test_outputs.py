"""Outputs beside the videos: watermarked copies (asked for by the request), images, and the
media faults of ``[sim:media=...]`` (cut, expire, slow)."""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.fake_kling.media import FREE_BOX_PREFIX, IMAGE_SIDE, PNG_TEXT_PREFIX
from service.fake_kling.media_faults import SLOW_CHUNK, trickle
from service.fake_kling.simulator import Simulator
from service.loopback import serve_on_loopback

from .helpers import AUTH, CREATE, body, eventually, top_level_boxes, wait_final
from .test_profiles import APIMODELS, gateway_body


def png_chunks(data: bytes) -> dict[bytes, bytes]:
    """The chunks of a PNG by type, each CRC checked: an independent reading of the file."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, offset = {}, 8
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind = data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", data, offset + 8 + length)
        assert crc == zlib.crc32(kind + payload), kind
        chunks[kind] = payload
        offset += 12 + length
    assert offset == len(data)
    return chunks


def simulator(app: Starlette) -> Simulator:
    sim: Simulator = app.state.fake_kling
    return sim


async def finished(client: httpx.AsyncClient, prompt: str, **fields: Any) -> Any:
    created = await client.post(CREATE, json=body(prompt, **fields))
    assert created.status_code == 200, created.text
    return await wait_final(client, created.json()["data"]["task_id"])


async def test_a_watermark_asked_for_gives_a_distinct_mp4_beside_each_video(
    client: httpx.AsyncClient,
) -> None:
    data = await finished(client, "[sim:videos=2]", watermark_info={"enabled": True})
    for video in data["task_result"]["videos"]:
        clean, marked = await client.get(video["url"]), await client.get(video["watermark_url"])
        assert (clean.status_code, marked.status_code) == (200, 200)
        assert marked.headers["content-type"] == "video/mp4"
        assert int(marked.headers["content-length"]) == len(marked.content)
        assert marked.headers["etag"] != clean.headers["etag"]
        assert top_level_boxes(marked.content)[-1] == (
            b"free",
            FREE_BOX_PREFIX + f"{video['id']}-watermarked".encode(),
        )
        assert hashlib.sha256(marked.content).digest() != hashlib.sha256(clean.content).digest()


@pytest.mark.parametrize("watermark", [None, {"enabled": False}])
async def test_no_watermark_url_unless_asked_for(
    client: httpx.AsyncClient, watermark: dict[str, bool] | None
) -> None:
    fields = {} if watermark is None else {"watermark_info": watermark}
    data = await finished(client, "a cat", **fields)
    assert "watermark_url" not in data["task_result"]["videos"][0]


async def test_images_are_real_pngs_served_with_length_and_etag(
    client: httpx.AsyncClient,
) -> None:
    data = await finished(client, "[sim:images=2]", watermark_info={"enabled": True})
    result = data["task_result"]
    assert len(result["videos"]) == 1
    images = result["images"]
    assert len(images) == 2 and len({image["id"] for image in images}) == 2
    for image in images:
        assert "duration" not in image
        for url, watermarked in ((image["url"], False), (image["watermark_url"], True)):
            response = await client.get(url)
            assert response.status_code == 200
            assert response.headers["content-type"] == "image/png"
            assert int(response.headers["content-length"]) == len(response.content)
            assert response.headers["etag"].startswith('"')
            chunks = png_chunks(response.content)
            assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (IMAGE_SIDE, IMAGE_SIDE)
            suffix = "-watermarked" if watermarked else ""
            assert (
                chunks[b"tEXt"]
                == b"Comment\x00" + PNG_TEXT_PREFIX + (image["id"] + suffix).encode()
            )
            rows = zlib.decompress(chunks[b"IDAT"])
            assert len(rows) == IMAGE_SIDE * (1 + 3 * IMAGE_SIDE)
        ranged = await client.get(image["url"], headers={"Range": "bytes=0-7"})
        assert (ranged.status_code, ranged.content) == (206, b"\x89PNG\r\n\x1a\n")
    # an image is not a video: its id under .mp4 is unknown
    assert (await client.get(f"/media/{images[0]['id']}.mp4")).status_code == 404


async def test_images_cost_nothing_extra(client: httpx.AsyncClient) -> None:
    plain = await finished(client, "a cat")
    with_images = await finished(client, "[sim:images=3]")
    assert with_images["final_unit_deduction"] == plain["final_unit_deduction"]


async def test_cut_sends_half_the_first_answer_then_serves_ranges() -> None:
    # on a real server: only a connection that closes early can cut an answer short
    app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.02))
    async with (
        serve_on_loopback(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=10) as client,
    ):
        data = await finished(client, "[sim:media=cut]")
        url = data["task_result"]["videos"][0]["url"]
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("GET", url) as first:
                total, etag = int(first.headers["content-length"]), first.headers["etag"]
                async for piece in first.aiter_raw():
                    received += piece
        assert len(received) == total // 2  # the rest never came: the connection closed
        rest = await client.get(url, headers={"Range": f"bytes={len(received)}-", "If-Range": etag})
        assert rest.status_code == 206
        assert len(received + rest.content) == total
        assert received + rest.content == (await client.get(url)).content  # cut once only


async def test_expire_refuses_the_first_url_until_a_query_hands_out_a_fresh_one(
    client: httpx.AsyncClient,
) -> None:
    data = await finished(client, "[sim:media=expire]", watermark_info={"enabled": True})
    video = data["task_result"]["videos"][0]
    refused = await client.get(video["url"])
    assert refused.status_code == 403
    assert b"AccessDenied" in refused.content
    assert (await client.get(video["url"])).status_code == 403  # it stays expired

    again = (await client.get(f"{CREATE}/{data['task_id']}")).json()["data"]
    fresh = again["task_result"]["videos"][0]
    assert fresh["url"] != video["url"]
    assert (await client.get(fresh["url"])).status_code == 200
    # the copy was not refused yet: its URL is kept until it is
    assert fresh["watermark_url"] == video["watermark_url"]
    assert (await client.get(video["watermark_url"])).status_code == 403
    later = (await client.get(f"{CREATE}/{data['task_id']}")).json()["data"]
    latest = later["task_result"]["videos"][0]
    assert latest["url"] == fresh["url"]  # not refused since: the same URL
    assert (await client.get(latest["watermark_url"])).status_code == 200
    described = (await client.get("/_sim/tasks")).json()["tasks"][0]["videos"][0]
    assert described["served"] == {"full": 1, "partial": 0, "refused": 2}
    assert described["watermark_served"] == {"full": 1, "partial": 0, "refused": 1}


async def test_trickle_sends_small_pieces_in_order() -> None:
    data = bytes(range(256)) * 40
    pieces = [piece async for piece in trickle(data)]
    assert b"".join(pieces) == data
    assert [len(piece) for piece in pieces[:-1]] == [SLOW_CHUNK] * (len(pieces) - 1)


async def test_slow_trickles_the_whole_file() -> None:
    app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.02))
    async with (
        serve_on_loopback(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=10) as client,
    ):
        data = await finished(client, "[sim:media=slow]")
        url = data["task_result"]["videos"][0]["url"]
        async with client.stream("GET", url) as response:
            pieces = [piece async for piece in response.aiter_raw()]
            total = int(response.headers["content-length"])
    assert sum(len(piece) for piece in pieces) == total
    assert len(pieces) > 1  # with pauses between the pieces, they cannot come as one read


async def test_every_file_of_the_task_has_the_fault(
    client: httpx.AsyncClient, fake_app: Starlette
) -> None:
    data = await finished(client, "[sim:media=cut][sim:images=1]", watermark_info={"enabled": True})
    faults = simulator(fake_app).media.faults
    result = data["task_result"]
    ids = [o["id"] for o in result["videos"] + result["images"]]
    for media_id in ids + [f"{i}-watermarked" for i in ids]:
        state = faults.get(media_id)
        assert state is not None and state.mode == "cut"


@pytest.mark.parametrize("config", [FakeKlingConfig(step_seconds=0.02, profile="apimodels")])
async def test_apimodels_has_no_place_for_images(client: httpx.AsyncClient) -> None:
    response = await client.post(APIMODELS, json=gateway_body("[sim:images=1]"))
    assert response.status_code == 400
    assert "images" in response.text


@pytest.mark.parametrize("config", [FakeKlingConfig(step_seconds=0.02, profile="apimodels")])
async def test_apimodels_accepts_a_watermark_but_makes_no_copy(
    client: httpx.AsyncClient, fake_app: Starlette
) -> None:
    fields = gateway_body("a cat", watermark_info={"enabled": True})
    created = await client.post(APIMODELS, json=fields)
    assert created.status_code == 200, created.text
    await eventually(lambda: not simulator(fake_app).store.all()[0].status.running)
    [task] = simulator(fake_app).store.all()
    assert [video.watermark_url for video in task.videos] == [None]


@pytest.mark.parametrize("config", [FakeKlingConfig(step_seconds=0.02, profile="newapi")])
async def test_newapi_relays_images_and_watermark_urls(
    client: httpx.AsyncClient, fake_app: Starlette
) -> None:
    fields = gateway_body("a cat [sim:images=1]", watermark_info={"enabled": True})
    created = (await client.post("/kling/v1/videos/omni-video", json=fields)).json()
    await eventually(lambda: not simulator(fake_app).store.all()[0].status.running)
    answer = await client.get(f"/kling/v1/videos/omni-video/{created['id']}")
    result = answer.json()["data"]["data"]["data"]["task_result"]  # Kling's answer, relayed
    [video], [image] = result["videos"], result["images"]
    assert video["watermark_url"] != video["url"]
    assert (await client.get(video["watermark_url"])).headers["content-type"] == "video/mp4"
    assert (await client.get(image["watermark_url"])).headers["content-type"] == "image/png"
