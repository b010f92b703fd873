"""``[sim:media=...]``: a CDN that misbehaves the ways real ones do, once per file or always.

- ``cut``: the first ``GET`` of each file announces the whole answer (``Content-Length``) and
  sends half of it, then the connection closes; every later request (a ``Range`` resume) is
  answered honestly;
- ``expire``: the signed URL a file is first handed out with has already expired: it answers
  ``403`` (an ``AccessDenied`` XML page, like an object store) every time. A query of the task
  made after such a refusal hands out a fresh URL (a new ``cacheKey``), which works;
- ``slow``: every answer trickles, :data:`SLOW_CHUNK` bytes every :data:`SLOW_PAUSE` seconds.

The state is kept per file (a video, its watermarked copy, an image), by its media id.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

MEDIA_FAULTS = ("cut", "expire", "slow")
SLOW_CHUNK = 4096  # bytes
SLOW_PAUSE = 0.02  # seconds between chunks: the 45 kB sample takes about a quarter second
EXPIRED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
)


@dataclass
class FaultState:
    """What one file's fault has done so far."""

    mode: str
    cut_done: bool = False  # cut: the one cut answer was sent
    live_key: str | None = None  # expire: the one cacheKey accepted (None: none yet)
    refused: bool = False  # expire: refused since the last fresh URL was handed out


class MediaFaults:
    """The faults of every file that has one, by media id."""

    def __init__(self) -> None:
        self._states: dict[str, FaultState] = {}

    def set(self, media_id: str, mode: str) -> None:
        if mode not in MEDIA_FAULTS:
            raise ValueError(f"unknown media fault {mode!r}")
        self._states.setdefault(media_id, FaultState(mode))

    def get(self, media_id: str) -> FaultState | None:
        return self._states.get(media_id)

    def refuses(self, media_id: str, key: str | None) -> bool:
        """Whether a request with this ``cacheKey`` is refused as expired (and remember it)."""
        state = self._states.get(media_id)
        if state is None or state.mode != "expire":
            return False
        if state.live_key is not None and key == state.live_key:
            return False
        state.refused = True
        return True

    def take_cut(self, media_id: str) -> bool:
        """Whether this answer is the one to cut (the first of a ``cut`` file)."""
        state = self._states.get(media_id)
        if state is None or state.mode != "cut" or state.cut_done:
            return False
        state.cut_done = True
        return True

    def slow(self, media_id: str) -> bool:
        state = self._states.get(media_id)
        return state is not None and state.mode == "slow"

    def fresh_key(self, media_id: str) -> str | None:
        """A new signed key for a file whose URL was refused since the last one; else None
        (the URL handed out before is still the one to use)."""
        state = self._states.get(media_id)
        if state is None or state.mode != "expire" or not state.refused:
            return None
        state.live_key, state.refused = secrets.token_hex(16), False
        return state.live_key


async def trickle(body: bytes) -> AsyncIterator[bytes]:
    """``body`` in small pieces with pauses between them: a slow CDN."""
    for start in range(0, len(body), SLOW_CHUNK):
        if start:
            await asyncio.sleep(SLOW_PAUSE)
        yield body[start : start + SLOW_CHUNK]
