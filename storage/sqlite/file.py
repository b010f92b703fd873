"""Is the SQLite file at the path still the one the storage opened?

An open SQLite connection keeps writing to its file even after the file was deleted (or
replaced by another one, say a restored backup) under it: every commit succeeds, into an inode
nobody will ever read again. So the storage remembers the file's identity (device and inode) when
it opens, and :meth:`DatabaseFile.check` compares: readiness checks at every probe, the group
commit before a batch at most every :data:`WRITE_CHECK_SECONDS` (an ``os.stat``, a few
microseconds), so a write is refused with :class:`StorageUnavailable` instead of being lost.
"""

from __future__ import annotations

import os
import time

from service.errors import StorageUnavailable

WRITE_CHECK_SECONDS = 1.0


class DatabaseFile:
    def __init__(self, path: str) -> None:
        # ":memory:" and URIs (file:...) have no path of their own to look at
        self._path = path if path != ":memory:" and not path.startswith("file:") else None
        self._identity: tuple[int, int] | None = None
        self._checked_at = float("-inf")  # time.monotonic() of the last check that passed

    def remember(self) -> None:
        """The storage has just opened the file: this one is the database from now on."""
        if self._path is None:
            return
        self._path = os.path.abspath(self._path)  # as opened: a later chdir changes nothing
        try:
            found = os.stat(self._path)
        except OSError as exc:
            raise StorageUnavailable(f"database file {self._path!r}: {exc}") from exc
        self._identity = (found.st_dev, found.st_ino)
        self._checked_at = time.monotonic()

    def forget(self) -> None:
        self._identity = None

    def check(self, *, unless_within: float = 0.0) -> None:
        """StorageUnavailable unless the path still names the file that was opened; skipped
        when a check passed less than ``unless_within`` seconds ago."""
        if self._identity is None or time.monotonic() - self._checked_at < unless_within:
            return
        assert self._path is not None
        try:
            found = os.stat(self._path)
        except FileNotFoundError:
            raise StorageUnavailable(
                f"database file {self._path!r} was deleted or replaced under the running "
                "service (writes would be lost): restore it, then restart"
            ) from None
        except OSError as exc:
            raise StorageUnavailable(f"database file {self._path!r}: {exc}") from exc
        if (found.st_dev, found.st_ino) != self._identity:
            raise StorageUnavailable(
                f"database file {self._path!r} was deleted or replaced under the running "
                "service (it is another file now): restart to open it"
            )
        self._checked_at = time.monotonic()

    def check_now_and_then(self) -> None:
        """The group commit's guard: :meth:`check`, at most every WRITE_CHECK_SECONDS."""
        self.check(unless_within=WRITE_CHECK_SECONDS)
