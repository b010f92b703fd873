"""download_video against scripted answers (httpx.MockTransport), and the partial-file cleaner."""

from __future__ import annotations

import errno
import fcntl
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.download import (
    PARTIAL_DIR,
    DownloadResult,
    clean_partial_downloads,
    download_video,
)
from service.errors import DownloadError, DownloadRetryable

SAMPLE = Path(__file__).resolve().parents[1] / "service" / "fake_kling" / "assets" / "sample.mp4"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 64
URL = "https://cdn.example.com/ksc2/video.mp4?x-signature=SIGNED-SECRET"
RELATIVE = "task-1/0.mp4"
Handler = Callable[[httpx.Request], httpx.Response]


def video(body: bytes = MP4, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"Content-Type": "video/mp4", **headers})


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class Downloader:
    """Runs download_video over a MockTransport and remembers the requests it made."""

    def __init__(self, media_dir: Path) -> None:
        self.media_dir = media_dir
        self.requests: list[httpx.Request] = []
        self.progress: list[tuple[int, int | None]] = []

    async def __call__(
        self,
        handler: Handler,
        url: str = URL,
        *,
        allow_private: bool = True,
        max_bytes: int = 10_000_000,
        **options: Any,
    ) -> DownloadResult:
        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as http:
            return await download_video(
                http,
                url,
                media_dir=self.media_dir,
                relative_path=RELATIVE,
                max_bytes=max_bytes,
                allow_private=allow_private,
                on_progress=options.get("on_progress", self._progress),
            )

    def _progress(self, received: int, total: int | None) -> None:
        self.progress.append((received, total))

    def assert_nothing_stored(self) -> None:
        """No temporary file left, and nothing (partial or not) at the final path."""
        partial = self.media_dir / PARTIAL_DIR
        assert not partial.exists() or list(partial.iterdir()) == []
        assert not (self.media_dir / RELATIVE).exists()


@pytest.fixture
def download(tmp_path: Path) -> Downloader:
    return Downloader(tmp_path / "media")


# --- success ----------------------------------------------------------------------------------


async def test_success_stores_the_file_with_its_sha256(download: Downloader) -> None:
    result = await download(lambda request: video())
    assert result == DownloadResult(
        path=download.media_dir / RELATIVE,
        size=len(MP4),
        sha256=hashlib.sha256(MP4).hexdigest(),
        content_type="video/mp4",
    )
    assert result.path.read_bytes() == MP4
    assert list((download.media_dir / PARTIAL_DIR).iterdir()) == []
    assert download.progress[-1] == (len(MP4), len(MP4))


async def test_streams_in_chunks_without_content_length(download: Downloader) -> None:
    parts = [MP4[:3], MP4[3:10], MP4[10:4000], MP4[4000:]]
    result = await download(lambda request: httpx.Response(200, content=chunks(*parts)))
    assert result.sha256 == hashlib.sha256(MP4).hexdigest()
    assert result.content_type is None
    assert download.progress == [(3, None), (10, None), (4000, None), (len(MP4), None)]


async def test_real_sample_video_replaces_an_older_file(download: Downloader) -> None:
    (download.media_dir / "task-1").mkdir(parents=True)
    (download.media_dir / RELATIVE).write_bytes(b"old")
    sample = SAMPLE.read_bytes()
    result = await download(lambda request: video(sample))
    assert result.path.read_bytes() == sample


async def test_a_public_address_is_allowed(download: Downloader) -> None:
    await download(lambda request: video(), "http://93.184.216.34/v.mp4", allow_private=False)
    assert str(download.requests[0].url) == "http://93.184.216.34/v.mp4"


async def test_redirects_are_followed(download: Downloader) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example.com":
            return httpx.Response(302, headers={"Location": "https://edge.example.com/v.mp4"})
        return video()

    await download(handler)
    assert [r.url.host for r in download.requests] == ["cdn.example.com", "edge.example.com"]


# --- refusals and failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (video(MP4[:-10], **{"Content-Length": str(len(MP4))}), DownloadRetryable, "announced"),
        (
            httpx.Response(200, text="<html>expired</html>", headers={"Content-Type": "text/html"}),
            DownloadError,
            "text/html page, not a video",
        ),
        (video(b"GIF89a" + bytes(100)), DownloadError, "not a video"),
        (video(b"\x00\x00"), DownloadError, "not a video"),
        (video(b""), DownloadError, "not a video"),
        (httpx.Response(400, text="bad"), DownloadError, "HTTP 400"),
        (httpx.Response(304), DownloadError, "HTTP 304"),
    ],
    ids=["content-length mismatch", "html page", "gif", "too short", "empty", "400", "304"],
)
async def test_bad_answers(
    download: Downloader, answer: httpx.Response, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        await download(lambda request: answer)
    assert "SIGNED-SECRET" not in str(caught.value)
    download.assert_nothing_stored()


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_expired_urls_are_permanent(download: Downloader, status: int) -> None:
    with pytest.raises(DownloadError, match="expired or was refused") as caught:
        await download(lambda request: httpx.Response(status))
    assert not isinstance(caught.value, DownloadRetryable)
    download.assert_nothing_stored()


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(500, {"Retry-After": "30"}, 30.0), (429, {"Retry-After": "7"}, 7.0), (503, {}, None)],
)
async def test_server_trouble_is_retryable(
    download: Downloader, status: int, headers: dict[str, str], retry_after: float | None
) -> None:
    with pytest.raises(DownloadRetryable) as caught:
        await download(lambda request: httpx.Response(status, headers=headers))
    assert caught.value.retry_after == retry_after
    download.assert_nothing_stored()


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("x")],
)
async def test_transport_errors_are_retryable(download: Downloader, exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(DownloadRetryable):
        await download(handler)
    download.assert_nothing_stored()


async def test_too_big_by_content_length(download: Downloader) -> None:
    with pytest.raises(DownloadError, match="over the 100-byte limit"):
        await download(lambda request: video(), max_bytes=100)
    assert download.progress == []  # refused before reading the body
    download.assert_nothing_stored()


async def test_too_big_while_streaming(download: Downloader) -> None:
    answer = httpx.Response(200, content=chunks(MP4[:60], MP4[60:120], MP4[120:]))
    with pytest.raises(DownloadError, match="over the 100-byte limit"):
        await download(lambda request: answer, max_bytes=100)
    assert download.progress == [(60, None)]
    download.assert_nothing_stored()


async def test_disk_full_is_retryable(download: Downloader) -> None:
    def disk_full(received: int, total: int | None) -> None:  # stands in for a failing write
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DownloadRetryable, match="disk full"):
        await download(lambda request: video(), on_progress=disk_full)
    download.assert_nothing_stored()


# --- destinations -----------------------------------------------------------------------------


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
    ],
)
async def test_private_addresses_are_refused(download: Downloader, url: str) -> None:
    with pytest.raises(DownloadError, match="private or reserved") as caught:
        await download(lambda request: video(), url, allow_private=False)
    assert not isinstance(caught.value, DownloadRetryable)
    assert download.requests == []
    download.assert_nothing_stored()


@pytest.mark.parametrize("url", ["http://127.0.0.1/v.mp4", "http://10.0.0.1/v.mp4"])
async def test_private_addresses_allowed_when_configured(download: Downloader, url: str) -> None:
    result = await download(lambda request: video(), url, allow_private=True)
    assert result.size == len(MP4)


async def test_redirect_to_a_private_address_is_refused(download: Downloader) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://127.0.0.1/admin"})

    with pytest.raises(DownloadError, match="private or reserved"):
        await download(handler, "http://93.184.216.34/v.mp4", allow_private=False)
    assert len(download.requests) == 1
    download.assert_nothing_stored()


async def test_endless_redirects_stop(download: Downloader) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/again"})

    with pytest.raises(DownloadError, match="redirects"):
        await download(handler)
    download.assert_nothing_stored()


@pytest.mark.parametrize("url", ["ftp://cdn.example.com/v.mp4", "file:///etc/passwd", "v.mp4"])
async def test_only_http_urls(download: Downloader, url: str) -> None:
    with pytest.raises(DownloadError, match="only http"):
        await download(lambda request: video(), url)
    download.assert_nothing_stored()


@pytest.mark.parametrize("relative", ["/abs/0.mp4", "../escape.mp4", f"{PARTIAL_DIR}/x.mp4", ""])
async def test_relative_path_stays_inside_the_media_dir(tmp_path: Path, relative: str) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: video())) as http:
        with pytest.raises(ValueError, match="inside the media directory"):
            await download_video(
                http,
                URL,
                media_dir=tmp_path,
                relative_path=relative,
                max_bytes=10,
                allow_private=True,
            )


# --- cleaning after a crash -------------------------------------------------------------------


def test_clean_partial_downloads(tmp_path: Path) -> None:
    assert clean_partial_downloads(tmp_path) == 0  # no .partial directory yet
    partial = tmp_path / PARTIAL_DIR
    partial.mkdir()
    (partial / "a.part").write_bytes(b"left by a crash")
    (partial / "b.part").write_bytes(b"")
    (partial / "notes.txt").write_text("not ours")
    with (partial / "live.part").open("wb") as live:
        fcntl.flock(live.fileno(), fcntl.LOCK_EX)  # a download in progress holds its file
        assert clean_partial_downloads(tmp_path) == 2
    assert sorted(path.name for path in partial.iterdir()) == ["live.part", "notes.txt"]
    assert clean_partial_downloads(tmp_path) == 1  # its holder is gone now
