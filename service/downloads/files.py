"""The partial file of one download, and what becomes of it.

Each video has one stable partial file, ``media_dir/.partial/<name>.part``, and, when the server
gave what resuming needs (a strong ETag and the total size), a small sidecar ``<name>.meta.json``
holding them. Both outlive a failed attempt (even a killed worker), so the next attempt of the
same job resumes where this one stopped. While a download runs its partial file is ``flock``-ed:
a second worker that picks the same job up (an expired lease) backs off instead of writing into
it, and :func:`clean_partial_downloads` never removes a live download.

A finished file is flushed, ``fsync``-ed and renamed into place (then the directory is
``fsync``-ed), so the final path holds a whole video or nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from service.errors import DownloadRetryable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks, cleaning then trusts the caller
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
PARTIAL_SUFFIX = ".part"
META_SUFFIX = ".meta.json"
# A resumable partial file nobody came back for (its task deleted, say) goes after this long.
KEEP_RESUMABLE_SECONDS = 7 * 24 * 3600
_HASH_BLOCK = 1024 * 1024
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16
_NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


class PartialBusy(Exception):
    """Another download (of this process or another) holds the partial file."""


@dataclass(frozen=True)
class ResumeInfo:
    """What a later request needs to ask for the rest of the same file."""

    etag: str  # strong: the only kind If-Range accepts
    total: int


def partial_stem(name: str) -> str:
    return quote(name, safe="")


class PartialFile:
    """The locked partial file of one download (see the module docstring)."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self.path = path
        self.meta_path = path.with_name(path.name.removesuffix(PARTIAL_SUFFIX) + META_SUFFIX)
        self._handle = handle

    @classmethod
    def open(cls, media_dir: Path, name: str) -> PartialFile:
        """Open (creating it if needed) and lock the partial file of ``name``."""
        directory = media_dir / PARTIAL_DIR
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / (partial_stem(name) + PARTIAL_SUFFIX)
        for _ in range(3):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            handle = os.fdopen(fd, "r+b", buffering=0)  # batches are large: no second buffer
            if fcntl is None:
                return cls(path, handle)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise PartialBusy(str(path)) from None
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return cls(path, handle)
            except FileNotFoundError:
                pass
            handle.close()  # a cleaner removed it between our open and our lock: again
        raise OSError(errno.EAGAIN, "cannot lock a partial download file", str(path))

    def size(self) -> int:
        self._handle.flush()
        return os.fstat(self._handle.fileno()).st_size

    def read_meta(self) -> ResumeInfo | None:
        return _read_meta(self.meta_path)

    def write_meta(self, info: ResumeInfo) -> None:
        temporary = self.meta_path.with_name(self.meta_path.name + ".tmp")
        temporary.write_text(json.dumps({"etag": info.etag, "total": info.total}))
        os.replace(temporary, self.meta_path)

    def forget_meta(self) -> None:
        self.meta_path.unlink(missing_ok=True)

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` bytes and write from there on."""
        self._handle.flush()
        if os.fstat(self._handle.fileno()).st_size != length:
            self._handle.truncate(length)
        self._handle.seek(length)

    def write_all(self, chunks: Sequence[bytes | memoryview]) -> None:
        """Append ``chunks`` with as few system calls as the kernel allows (no joining copy)."""
        pending = [memoryview(chunk) for chunk in chunks if chunk]
        fd = self._handle.fileno()
        while pending:
            written = os.writev(fd, pending[:_IOV_MAX])
            while pending and written >= len(pending[0]):
                written -= len(pending.pop(0))
            if pending and written:
                pending[0] = pending[0][written:]

    def start_writeback(self) -> None:
        """Start writing what was written to disk, without waiting, and let the kernel drop
        from its page cache what an earlier call already had written out.

        The ``fsync`` before the rename (:meth:`commit`) is what makes the file durable; this
        only leaves it little to do, without stopping the writes (an ``fdatasync`` here would
        wait for the disk and the journal). ``POSIX_FADV_DONTNEED`` starts the writeback of
        dirty pages and drops the clean ones. A video is written once and read rarely: keeping
        hundreds of megabytes of it cached would push out what the database and the rest of the
        machine use, and pages given back at once are the ones the next writes reuse, cheaper
        than fresh memory (markedly so in a virtual machine)."""
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):  # advice only: a file system may not take it
                os.posix_fadvise(self._handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)

    def hash_prefix(self, length: int) -> tuple[Any, bytes]:
        """A running SHA-256 over the first ``length`` bytes, and the first bytes themselves."""
        digest = hashlib.sha256()
        self._handle.flush()
        self._handle.seek(0)
        head, remaining = b"", length
        while remaining > 0:
            block = self._handle.read(min(_HASH_BLOCK, remaining))
            if not block:
                raise OSError(errno.EIO, "the partial file is shorter than expected")
            if not head:
                head = block[:64]
            digest.update(block)
            remaining -= len(block)
        self._handle.seek(length)
        return digest, head

    def commit(self, target: Path) -> None:
        """Make the partial file the video at ``target``, durably; the sidecar goes."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)
        _fsync_directory(target.parent)
        self.forget_meta()
        self._handle.close()

    def release(self, *, keep: bool) -> None:
        """Done with it for this attempt: keep it for a resume, or remove it (we hold the lock)."""
        if self._handle.closed:
            return
        try:
            if not keep:
                self.path.unlink(missing_ok=True)
                self.forget_meta()
            else:
                self._handle.flush()
        except OSError as exc:
            log.warning("cannot tidy %s: %s", self.path, exc, extra={"action": "download.tidy"})
        finally:
            # A flush that fails again (disk still full) must not hide the download's error.
            with contextlib.suppress(OSError):
                self._handle.close()


def discard_partial(media_dir: Path, name: str) -> bool:
    """Remove the partial file of ``name`` unless a download holds it; True when removed."""
    path = media_dir / PARTIAL_DIR / (partial_stem(name) + PARTIAL_SUFFIX)
    if not path.exists():
        return False
    try:
        partial = PartialFile.open(media_dir, name)
    except PartialBusy:
        return False
    partial.release(keep=False)
    return True


def clean_partial_downloads(media_dir: Path, *, now: float | None = None) -> int:
    """At worker start: remove what no download will come back for; how many files went.

    A partial file nobody holds is kept when its sidecar makes it resumable and it is younger
    than :data:`KEEP_RESUMABLE_SECONDS` (its job will be retried and resume from it); anything
    else, including sidecars without their file, is a leftover.
    """
    partial_dir = media_dir / PARTIAL_DIR
    if not partial_dir.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for path in sorted(partial_dir.iterdir()):
        if path.name.endswith(PARTIAL_SUFFIX):
            removed += _clean_one(path, now)
        elif path.name.endswith(META_SUFFIX + ".tmp"):
            removed += _unlink(path)
        elif path.name.endswith(META_SUFFIX):
            stem = path.name.removesuffix(META_SUFFIX)
            if not (partial_dir / (stem + PARTIAL_SUFFIX)).exists():
                removed += _unlink(path)
    return removed


def _clean_one(path: Path, now: float) -> int:
    meta = path.with_name(path.name.removesuffix(PARTIAL_SUFFIX) + META_SUFFIX)
    try:
        with path.open("rb") as probe:
            if fcntl is not None:
                try:
                    fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return 0  # a download in progress holds it
            info = _read_meta(meta)
            fresh = now - os.fstat(probe.fileno()).st_mtime < KEEP_RESUMABLE_SECONDS
            if info is not None and fresh and 0 < os.fstat(probe.fileno()).st_size <= info.total:
                return 0  # resumable: the job's next attempt continues from it
            path.unlink()
            return 1 + _unlink(meta)
    except FileNotFoundError:
        return 0  # finished or cleaned meanwhile
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc, extra={"action": "download.clean"})
        return 0


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1


def _read_meta(path: Path) -> ResumeInfo | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    etag, total = (data.get("etag"), data.get("total")) if isinstance(data, dict) else (None, None)
    if not isinstance(etag, str) or not isinstance(total, int) or total <= 0:
        return None
    return ResumeInfo(etag, total)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself survive a power cut
    finally:
        os.close(fd)


def target_path(media_dir: Path, relative_path: str) -> Path:
    """``media_dir / relative_path``, refusing paths that would leave the media directory."""
    relative = Path(relative_path)
    if (
        relative.is_absolute()
        or not relative.parts
        or ".." in relative.parts
        or relative.parts[0] == PARTIAL_DIR
    ):
        raise ValueError(f"a video's path must stay inside the media directory: {relative_path!r}")
    return media_dir / relative


def storage_error(exc: OSError, media_dir: Path) -> DownloadRetryable:
    """A failure to write the media directory. Retryable: an operator can free space or fix
    permissions, and giving up would lose a paid-for video."""
    if exc.errno in _NO_SPACE:
        return DownloadRetryable(
            f"disk full: no space left in {media_dir} to store the video; nothing half-written "
            "was kept and the download will be retried"
        )
    return DownloadRetryable(f"cannot write the video into {media_dir}: {exc}")
