"""download_video against scripted answers (httpx.MockTransport): what is stored, what is not."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from service.downloads import download_video
from service.errors import DownloadError, DownloadRetryable
from tests.downloads.conftest import SAMPLE, Runner, limits, quicktime_bytes, sha256

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 64
URL = "https://cdn.example.com/ksc2/video.mp4?x-signature=SIGNED-SECRET"
Handler = Callable[[httpx.Request], httpx.Response]


def video(body: bytes = MP4, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"Content-Type": "video/mp4", **headers})


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class Scripted:
    """A MockTransport that answers with ``handler`` and remembers the requests."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._record)
        self._handler = handler

    def _record(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._handler(request)


async def fetch(run: Runner, handler: Handler, url: str = URL, **options: object) -> Scripted:
    scripted = Scripted(handler)
    await run(url, transport=scripted.transport, **options)  # type: ignore[arg-type]
    return scripted


async def fails(
    run: Runner,
    handler: Handler,
    error: type[Exception],
    match: str | None,
    **options: object,
) -> Exception:
    with pytest.raises(error, match=match) as caught:
        await fetch(run, handler, URL, **options)
    assert "SIGNED-SECRET" not in str(caught.value)
    assert run.stored() == [] and run.leftovers() == []  # nothing half-written anywhere
    return caught.value


# --- success ----------------------------------------------------------------------------------


async def test_streams_in_chunks_without_content_length(run: Runner) -> None:
    parts = [MP4[:3], MP4[3:10], MP4[10:4000], MP4[4000:]]
    await fetch(run, lambda request: httpx.Response(200, content=chunks(*parts)))
    stored = run.media_dir / "task-1" / "0.mp4"
    assert stored.read_bytes() == MP4
    assert run.progress[-1] == (len(MP4), None)


async def test_the_real_sample_replaces_an_older_file(run: Runner) -> None:
    (run.media_dir / "task-1").mkdir(parents=True)
    (run.media_dir / "task-1" / "0.mp4").write_bytes(b"old")
    await fetch(run, lambda request: video(SAMPLE))
    assert (run.media_dir / "task-1" / "0.mp4").read_bytes() == SAMPLE


async def test_a_quicktime_file_is_stored_as_mov(run: Runner) -> None:
    mov = quicktime_bytes()
    scripted = Scripted(lambda request: video(mov, **{"Content-Type": "video/quicktime"}))
    result = await run(URL, transport=scripted.transport)
    assert result.relative_path == "task-1/0.mov"
    assert result.content_type == "video/quicktime"
    assert result.path.read_bytes() == mov and result.sha256 == sha256(mov)
    assert result.duration is not None and 2.9 < result.duration < 3.2


@pytest.mark.parametrize("content_type", ["application/octet-stream", "binary/octet-stream", ""])
async def test_generic_content_types_are_judged_by_their_bytes(
    run: Runner, content_type: str
) -> None:
    await fetch(run, lambda request: video(MP4, **{"Content-Type": content_type}))
    assert run.stored() == ["task-1/0.mp4"]


async def test_a_public_address_is_fetched(run: Runner) -> None:
    scripted = await fetch(
        run, lambda r: video(), "http://93.184.216.34/v.mp4", allow_private=False
    )
    assert str(scripted.requests[0].url) == "http://93.184.216.34/v.mp4"


async def test_redirects_are_followed(run: Runner) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example.com":
            return httpx.Response(302, headers={"Location": "https://edge.example.com/v.mp4"})
        return video()

    scripted = await fetch(run, handler)
    assert [r.url.host for r in scripted.requests] == ["cdn.example.com", "edge.example.com"]


async def test_a_206_that_stops_early_is_continued(run: Runner) -> None:
    """A server may answer an open range with less than the rest: ask again for what follows."""
    half = len(MP4) // 2

    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        end = min(start + 1000, len(MP4))
        headers = {"ETag": '"e"', "Content-Range": f"bytes {start}-{end - 1}/{len(MP4)}"}
        return httpx.Response(206, content=MP4[start:end], headers=headers)

    run.partial_dir.mkdir(parents=True)
    (run.partial_dir / "task-1%2F0.part").write_bytes(MP4[:half])
    (run.partial_dir / "task-1%2F0.meta.json").write_text(
        f'{{"etag": "\\"e\\"", "total": {len(MP4)}}}'
    )
    scripted = Scripted(handler)
    result = await run(URL, transport=scripted.transport)
    assert result.sha256 == sha256(MP4) and result.resumed_from == half
    assert len(scripted.requests) == -(-(len(MP4) - half) // 1000)


# --- refusals and failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (
            httpx.Response(200, text="<html>expired</html>", headers={"Content-Type": "text/html"}),
            DownloadError,
            "text/html page, not a video",
        ),
        (
            httpx.Response(200, json={"error": "expired"}),
            DownloadError,
            "application/json page, not a video",
        ),
        (video(b"GIF89a" + bytes(100)), DownloadError, "not a video"),
        (video(b"\x00\x00\x00\x02ftypmp42"), DownloadError, "not a video"),
        (video(b"\x00\x00"), DownloadError, "not a video"),
        (video(b""), DownloadError, "not a video"),
        (httpx.Response(400, text="bad"), DownloadError, "HTTP 400"),
        (httpx.Response(304), DownloadError, "HTTP 304"),
    ],
    ids=["html page", "json", "gif", "bad box size", "too short", "empty", "400", "304"],
)
async def test_bad_answers(
    run: Runner, answer: httpx.Response, error: type[Exception], message: str
) -> None:
    exc = await fails(run, lambda request: answer, error, message)
    assert not isinstance(exc, DownloadRetryable)


async def test_a_short_body_is_retryable(run: Runner) -> None:
    answer = httpx.Response(
        200, content=chunks(MP4[:-10]), headers={"Content-Length": str(len(MP4))}
    )
    await fails(run, lambda request: answer, DownloadRetryable, None)


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_expired_urls_without_a_refresher_are_permanent(run: Runner, status: int) -> None:
    exc = await fails(
        run, lambda r: httpx.Response(status), DownloadError, "expired or was refused"
    )
    assert not isinstance(exc, DownloadRetryable)


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (500, {"Retry-After": "30"}, 30.0),
        (429, {"Retry-After": "7"}, 7.0),
        (503, {}, None),
        (408, {}, None),
    ],
)
async def test_server_trouble_is_retryable(
    run: Runner, status: int, headers: dict[str, str], retry_after: float | None
) -> None:
    answer = httpx.Response(status, headers=headers)
    exc = await fails(run, lambda request: answer, DownloadRetryable, f"HTTP {status}")
    assert isinstance(exc, DownloadRetryable) and exc.retry_after == retry_after


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("x")],
)
async def test_transport_errors_are_retryable(run: Runner, exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    await fails(run, handler, DownloadRetryable, None)


async def test_too_big_by_content_length(run: Runner) -> None:
    await fails(
        run, lambda request: video(), DownloadError, "over the 100-byte limit", max_bytes=100
    )
    assert run.progress == []  # refused before reading the body


async def test_too_big_while_streaming(run: Runner) -> None:
    answer = httpx.Response(200, content=chunks(MP4[:60], MP4[60:120], MP4[120:]))
    await fails(
        run, lambda request: answer, DownloadError, "over the 100-byte limit", max_bytes=100
    )


async def test_the_deadline_ends_an_attempt_retryably(run: Runner) -> None:
    async def slow() -> AsyncIterator[bytes]:
        yield MP4[:100]
        await asyncio.sleep(5)
        yield MP4[100:]

    answer = httpx.Response(
        200, content=slow(), headers={"ETag": '"e"', "Content-Length": str(len(MP4))}
    )
    with pytest.raises(DownloadRetryable, match=r"0\.3-second deadline"):
        await fetch(run, lambda request: answer, deadline=0.3)
    assert run.stored() == []
    # What came is kept: the next attempt resumes from it.
    assert (run.partial_dir / "task-1%2F0.part").read_bytes() == MP4[:100]


async def test_disk_full_is_retryable_and_leaves_nothing(run: Runner) -> None:
    """A real ENOSPC: the partial file is made a link to /dev/full, where every write fails."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    run.partial_dir.mkdir(parents=True)
    partial = run.partial_dir / "task-1%2F0.part"
    partial.symlink_to("/dev/full")
    with pytest.raises(DownloadRetryable, match="disk full") as caught:
        await fetch(run, lambda request: video(bytes(MP4) * 20))
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert not partial.exists() and not partial.is_symlink()
    assert run.stored() == [] and run.leftovers() == []


# --- destinations and names -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/v.mp4",
        "http://10.0.0.1/v.mp4",
        "http://192.168.1.20:8080/v.mp4",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/v.mp4",
        "http://0.0.0.0/v.mp4",
        "http://224.0.0.1/v.mp4",
        "http://[::1]/v.mp4",
        "http://[fe80::1]/v.mp4",
        "http://[::ffff:127.0.0.1]/v.mp4",
        "http://localhost/v.mp4",
        "http://media.localhost/v.mp4",
    ],
)
async def test_private_addresses_are_refused_before_any_request(run: Runner, url: str) -> None:
    scripted = Scripted(lambda request: video())
    with pytest.raises(DownloadError, match="private or reserved") as caught:
        await run(url, transport=scripted.transport, allow_private=False)
    assert not isinstance(caught.value, DownloadRetryable)
    assert scripted.requests == []
    assert run.stored() == [] and run.leftovers() == []


@pytest.mark.parametrize("url", ["http://127.0.0.1/v.mp4", "http://10.0.0.1/v.mp4"])
async def test_private_addresses_allowed_when_configured(run: Runner, url: str) -> None:
    await fetch(run, lambda request: video(), url, allow_private=True)
    assert run.stored() == ["task-1/0.mp4"]


async def test_redirect_to_a_private_address_is_refused(run: Runner) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://127.0.0.1/admin"})

    with pytest.raises(DownloadError, match="private or reserved"):
        await fetch(run, handler, "http://93.184.216.34/v.mp4", allow_private=False)
    assert run.stored() == [] and run.leftovers() == []


async def test_endless_redirects_stop(run: Runner) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/again"})

    await fails(run, handler, DownloadError, "redirects")


@pytest.mark.parametrize("url", ["ftp://cdn.example.com/v.mp4", "file:///etc/passwd", "v.mp4"])
async def test_only_http_urls(run: Runner, url: str) -> None:
    with pytest.raises(DownloadError, match="only http"):
        await fetch(run, lambda request: video(), url)


@pytest.mark.parametrize("name", ["/abs/0", "../escape", ".partial/x", ""])
async def test_the_name_stays_inside_the_media_dir(tmp_path: Path, name: str) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: video())) as http:
        with pytest.raises(ValueError, match="inside the media directory"):
            await download_video(http, URL, media_dir=tmp_path, name=name, limits=limits())
