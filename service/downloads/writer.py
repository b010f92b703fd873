"""Writing and hashing off the event loop, one batch behind the network.

Received chunks are gathered into batches (:data:`BATCH_BYTES`). A batch is hashed by one worker
thread and written by another, while the event loop receives the next one: ``hashlib`` and file
writes release the GIL, so the network, the hash and the disk work at the same time, and the
hash (the slowest of the three on a fast link) never waits for the disk. Every
:data:`WRITEBACK_EVERY` bytes the writing thread also starts writing the file out to disk,
without waiting (:meth:`PartialFile.start_writeback`), so the ``fsync`` before the rename has
little left to do and a crash loses little of what a resume could use. Memory stays bounded: one
batch being filled, one being hashed and written.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from service.downloads.files import PartialFile

BATCH_BYTES = 1024 * 1024
# Small: the page cache a download holds stays small, and the pages it gives back are the ones
# its next writes reuse (32 MiB was slower and far more erratic, bench_download).
WRITEBACK_EVERY = 8 * 1024 * 1024


class BatchWriter:
    def __init__(self, partial: PartialFile, digest: Any) -> None:
        self._partial = partial
        self._digest = digest
        self._batch: list[bytes] = []
        self._batched = 0
        self._in_flight: list[asyncio.Future[None]] = []
        self._not_written_back = 0

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
        loop = asyncio.get_running_loop()
        self._in_flight = [
            loop.run_in_executor(None, self._hash, batch),
            loop.run_in_executor(None, self._write, batch),
        ]

    async def _settle(self) -> None:
        in_flight, self._in_flight = self._in_flight, []
        if not in_flight:
            return
        try:
            await asyncio.wait(in_flight)  # never cancels them
        except asyncio.CancelledError:
            # The threads keep going: the file must not be closed under them.
            while not all(future.done() for future in in_flight):
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait(in_flight)
            for future in in_flight:
                future.exception()  # retrieved: it is the cancellation that matters now
            raise
        failures = [future.exception() for future in in_flight]
        for failure in failures:
            if failure is not None:
                raise failure

    def _hash(self, batch: list[bytes]) -> None:
        for chunk in batch:  # the chunks as received: no copy into one buffer
            self._digest.update(chunk)

    def _write(self, batch: list[bytes]) -> None:
        self._partial.write_all(batch)
        self._not_written_back += sum(map(len, batch))
        if self._not_written_back >= WRITEBACK_EVERY:
            self._not_written_back = 0
            self._partial.start_writeback()
