"""Fetch one finished video into the media directory, safely.

The body is streamed into ``media_dir/.partial/`` with a running SHA-256, flushed to disk and
only then renamed into place, so the final path never holds a partial file. Each partial file is
``flock``-ed while it is written: :func:`clean_partial_downloads` removes only files nobody holds,
so a worker starting beside a running one never deletes a live download.

Errors are :class:`DownloadRetryable` when a later attempt may work (timeouts, 5xx, 429, full
disk) and :class:`DownloadError` otherwise (an expired URL, a web page instead of a video, a file
over the size limit, a private address). URLs appear in messages without their query string:
CDN URLs carry signed parameters.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import ipaddress
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from service.errors import DownloadError, DownloadRetryable
from service.retry_after import parse_retry_after

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks, cleaning then trusts the caller
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
PARTIAL_SUFFIX = ".part"
MAX_REDIRECTS = 5
_SNIFF_BYTES = 8  # size (4 bytes) + type (4 bytes) of the first ISO-BMFF box
_VIDEO_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"wide"})
_EXPIRED = frozenset({403, 404, 410})
_NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})

ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str
    content_type: str | None


async def download_video(
    http: httpx.AsyncClient,
    url: str,
    *,
    media_dir: Path,
    relative_path: str,
    max_bytes: int,
    allow_private: bool,
    on_progress: ProgressCallback | None = None,
) -> DownloadResult:
    """Download ``url`` to ``media_dir/relative_path``; see the module docstring for errors."""
    target = _target_path(media_dir, relative_path)
    try:
        partial, partial_path = _open_partial(media_dir / PARTIAL_DIR)
    except OSError as exc:
        raise _storage_error(exc) from exc
    committed = False
    try:
        with partial:
            size, sha256, content_type = await _fetch(
                http, url, partial, max_bytes, allow_private, on_progress
            )
            # fsync can take a while for a large file: keep it off the event loop.
            await asyncio.to_thread(_commit, partial, partial_path, target)
            committed = True
    except OSError as exc:
        raise _storage_error(exc) from exc
    finally:
        if not committed:
            partial_path.unlink(missing_ok=True)
    log.info("stored %s (%d bytes)", relative_path, size, extra={"action": "download.stored"})
    return DownloadResult(target, size, sha256, content_type)


def clean_partial_downloads(media_dir: Path) -> int:
    """Remove partial files left by a crash (those no live download holds); how many."""
    partial_dir = media_dir / PARTIAL_DIR
    if not partial_dir.is_dir():
        return 0
    removed = 0
    for path in partial_dir.glob(f"*{PARTIAL_SUFFIX}"):
        try:
            with path.open("rb") as probe:
                if fcntl is not None:
                    try:
                        fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a download in progress holds it
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # finished or cleaned meanwhile
        except OSError as exc:
            log.warning("cannot remove %s: %s", path, exc, extra={"action": "download.clean"})
    return removed


async def check_destination(url: str, *, allow_private: bool) -> httpx.URL:
    """The parsed URL, if it is http(s) and (unless allowed) reaches only public addresses."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise DownloadError(f"invalid video URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DownloadError(f"refusing video URL {_display(parsed)}: only http(s) URLs are fetched")
    if allow_private:
        return parsed
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    for address in await _addresses(parsed.host, port):
        if _is_private(address):
            raise DownloadError(
                f"refusing to download from {parsed.host}: it resolves to {address}, a private "
                "or reserved address (OMNIHOOK_ALLOW_PRIVATE_NETWORKS=true allows it)"
            )
    return parsed


async def _fetch(
    http: httpx.AsyncClient,
    url: str,
    out: BinaryIO,
    max_bytes: int,
    allow_private: bool,
    on_progress: ProgressCallback | None,
) -> tuple[int, str, str | None]:
    # Redirects are followed by hand so that every hop's destination is checked.
    current = await check_destination(url, allow_private=allow_private)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with http.stream("GET", current, follow_redirects=False) as response:
                if response.has_redirect_location:
                    location = response.url.join(response.headers["Location"])
                    current = await check_destination(str(location), allow_private=allow_private)
                    continue
                _check_response(response)
                return await _receive(response, out, max_bytes, on_progress)
        except httpx.TimeoutException as exc:
            raise DownloadRetryable(f"timed out fetching {_display(current)}") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DownloadError(f"cannot fetch {_display(current)}: {exc}") from exc
        except httpx.HTTPError as exc:  # connection refused/reset, protocol and decoding errors
            name = type(exc).__name__
            raise DownloadRetryable(f"{name} fetching {_display(current)}: {exc}") from exc
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects from {_display(url)}")


def _check_response(response: httpx.Response) -> None:
    status, where = response.status_code, _display(response.url)
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise DownloadRetryable(f"HTTP {status} from {where}", retry_after=retry_after)
    if status in _EXPIRED:
        raise DownloadError(f"the video URL expired or was refused (HTTP {status}): {where}")
    if not 200 <= status < 300:
        raise DownloadError(f"HTTP {status} from {where}")
    media_type = _media_type(response)
    if media_type is not None and media_type.startswith("text/"):
        # CDNs answer expired signatures with an HTML page and a 200 now and then.
        raise DownloadError(f"{where} is a {media_type} page, not a video")


async def _receive(
    response: httpx.Response, out: BinaryIO, max_bytes: int, on_progress: ProgressCallback | None
) -> tuple[int, str, str | None]:
    expected = _content_length(response)
    where = _display(response.url)
    if expected is not None and expected > max_bytes:
        raise DownloadError(f"{where} is {expected} bytes, over the {max_bytes}-byte limit")
    digest, size, head = hashlib.sha256(), 0, b""
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise DownloadError(f"{where} is over the {max_bytes}-byte limit")
        if len(head) < _SNIFF_BYTES:
            head += chunk[: _SNIFF_BYTES - len(head)]
            if len(head) == _SNIFF_BYTES:
                _check_video(head, where)
        digest.update(chunk)
        out.write(chunk)
        if on_progress is not None:
            on_progress(size, expected)
    if len(head) < _SNIFF_BYTES:
        _check_video(head, where)
    if expected is not None and size != expected:
        raise DownloadRetryable(f"{where} sent {size} bytes of the {expected} announced")
    return size, digest.hexdigest(), _media_type(response)


def _check_video(head: bytes, where: str) -> None:
    # MP4 and MOV are ISO-BMFF: the first box's type sits at offset 4.
    if len(head) < _SNIFF_BYTES or head[4:8] not in _VIDEO_BOXES:
        raise DownloadError(f"{where} is not a video (no MP4/MOV header)")


def _content_length(response: httpx.Response) -> int | None:
    # With a Content-Encoding the header counts encoded bytes, not the ones we store.
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def _media_type(response: httpx.Response) -> str | None:
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return media_type or None


def _open_partial(partial_dir: Path) -> tuple[BinaryIO, Path]:
    """A new locked file in ``partial_dir`` (that a cleaner did not remove before we locked it)."""
    partial_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        fd, name = tempfile.mkstemp(dir=partial_dir, suffix=PARTIAL_SUFFIX)
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would keep the stored video from other readers
        handle = os.fdopen(fd, "w+b")
        if fcntl is None:
            return handle, Path(name)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                return handle, Path(name)
        except FileNotFoundError:
            pass
        handle.close()  # cleaned between creation and locking: try a new name
    raise OSError(errno.EAGAIN, "cannot create a partial download file", str(partial_dir))


def _commit(partial: BinaryIO, partial_path: Path, target: Path) -> None:
    partial.flush()
    os.fsync(partial.fileno())
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial_path, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself survive a power cut
    finally:
        os.close(directory)


def _target_path(media_dir: Path, relative_path: str) -> Path:
    relative = Path(relative_path)
    if (
        relative.is_absolute()
        or not relative.parts
        or ".." in relative.parts
        or relative.parts[0] == PARTIAL_DIR
    ):
        raise ValueError(f"relative_path must stay inside the media directory: {relative_path!r}")
    return media_dir / relative


def _storage_error(exc: OSError) -> DownloadError:
    if exc.errno in _NO_SPACE:
        return DownloadRetryable(f"disk full: cannot store the video ({exc.strerror})")
    return DownloadError(f"cannot store the video: {exc}")


async def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DownloadRetryable(f"cannot resolve {host}: {exc.strerror}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _is_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global
    )


def _display(url: httpx.URL | str) -> str:
    """The URL without credentials, query and fragment: signed parameters stay out of messages."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except httpx.InvalidURL:
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"
