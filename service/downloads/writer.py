"""Writing and hashing off the event loop, one batch behind the network.

Received chunks are gathered into batches (:data:`BATCH_BYTES`); a batch is hashed and written
by a worker thread while the event loop receives the next one (``hashlib`` and file writes
release the GIL), so the network, the hash and the disk work at the same time. Every
:data:`SYNC_EVERY` bytes the thread also flushes the file to disk, so the ``fsync`` before the
rename has little left to do and a crash loses little of what a resume could use. Memory stays
bounded: one batch being filled, one being written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.downloads.files import PartialFile

BATCH_BYTES = 1024 * 1024
SYNC_EVERY = 32 * 1024 * 1024


class BatchWriter:
    def __init__(self, partial: PartialFile, digest: Any) -> None:
        self._partial = partial
        self._digest = digest
        self._batch: list[bytes] = []
        self._batched = 0
        self._in_flight: asyncio.Future[None] | None = None
        self._unsynced = 0

    async def add(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._batched >= BATCH_BYTES:
            await self._hand_over()

    async def flush(self) -> None:
        """Write what is left and wait until everything is written (even if cancelled)."""
        if self._batch:
            await self._hand_over()
        await self._settle()

    async def _hand_over(self) -> None:
        await self._settle()
        batch, self._batch, self._batched = self._batch, [], 0
        self._in_flight = asyncio.get_running_loop().run_in_executor(None, self._write, batch)

    async def _settle(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return
        try:
            await asyncio.shield(in_flight)
        except asyncio.CancelledError:
            # The thread keeps writing: the file must not be closed under it.
            await asyncio.wait([in_flight])
            if not in_flight.cancelled():
                in_flight.exception()  # retrieved: it is the cancellation that matters now
            raise

    def _write(self, batch: list[bytes]) -> None:
        for chunk in batch:  # the chunks as received: no copy into one buffer
            self._digest.update(chunk)
        self._partial.write_all(batch)
        self._unsynced += sum(map(len, batch))
        if self._unsynced >= SYNC_EVERY:
            self._unsynced = 0
            self._partial.flush_to_disk()
