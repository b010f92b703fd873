"""An ``sqlite3`` connection that one thread of its own opens, uses and closes.

The SQLite backend talks to the database only through two of these: the writer
(:mod:`storage.sqlite.writer`) and the reader (:mod:`storage.sqlite.reader`). Coroutines hand a
*call* (a plain function of the connection) to the thread and await its future; the thread takes
the calls queued, runs them (:meth:`ConnectionThread._serve`: one at a time for the reader, in
one transaction for the writer) and answers them with one ``call_soon_threadsafe`` per batch.
So SQLite never runs, and never waits (busy timeout, fsync), on the event loop's thread, and
the connection is only ever touched by the thread that made it (``check_same_thread`` holds).

Lifecycle: :meth:`ConnectionThread.start` opens the connection on the new thread (its error is
raised to the caller); :meth:`ConnectionThread.stop` refuses new calls at once, lets the thread
finish those already queued, then closes the connection and ends the thread. A call handed
over while it is not running fails with :class:`StorageError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from service.errors import StorageError
from storage.sqlite import errors as sqlite_errors

R = TypeVar("R")
Function = Callable[[sqlite3.Connection], R]


@dataclass(eq=False)
class Call(Generic[R]):
    """A function waiting for (or running on) the thread, its caller's future and its outcome."""

    function: Function[R]
    future: asyncio.Future[R]
    deadline: float  # time.monotonic() after which it no longer waits for the write lock
    bare: bool = False  # the writer runs it outside any transaction (see Writer.run_bare)
    abandoned: bool = False  # its caller was cancelled before it ran: skip it
    value: Any = None
    error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        self.value, self.error = None, error


class _Stop:
    """Queued by :meth:`ConnectionThread.stop`, behind every call handed over before it."""


_STOP = _Stop()


class ConnectionThread:
    """A connection, its thread and the queue of calls between the event loop and it."""

    batch_size = 1  # calls taken together from the queue, for one _serve

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self.name = name
        self._connect = connect  # runs on the thread: the connection belongs to it
        self._queue: queue.SimpleQueue[Call[Any] | _Stop] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None  # set while it takes calls
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    async def start(self) -> None:
        """Open the connection on a new thread; raises what opening it raised."""
        if self._thread is not None:
            return
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        self._queue = queue.SimpleQueue()  # nothing left over from an earlier run
        # daemon: a storage its owner never closed must not keep the interpreter from exiting
        # (what the thread had not committed is lost as in a crash, which SQLite survives)
        thread = threading.Thread(
            target=self._main, args=(loop, opened), name=f"sqlite {self.name}", daemon=True
        )
        self._thread = thread
        thread.start()
        try:
            await opened
        except BaseException:  # it failed to open, or this caller was cancelled meanwhile
            self._queue.put(_STOP)
            await asyncio.shield(self._stopped)
            thread.join()
            self._thread = None
            raise
        self._loop = loop

    async def stop(self) -> None:
        """Refuse new calls, finish the queued ones, close the connection, end the thread."""
        thread, self._thread = self._thread, None
        if thread is None or self._stopped is None:
            return
        self._loop = None  # from now on calls fail at once: none lands behind the _STOP
        self._queue.put(_STOP)
        await asyncio.shield(self._stopped)
        thread.join()  # it has nothing left to do but return

    async def call(self, function: Function[R], *, deadline: float, bare: bool = False) -> R:
        """Run ``function`` on the thread; its answer (or its error) once it has run."""
        loop = self._loop
        if loop is None:
            raise StorageError(f"{self.name} is not open (not opened yet, or closed)")
        if loop is not asyncio.get_running_loop():
            raise StorageError(f"{self.name} was opened by another event loop")
        queued: Call[R] = Call(function, loop.create_future(), deadline, bare=bare)
        self._queue.put(queued)
        try:
            return await queued.future
        except asyncio.CancelledError:
            queued.abandoned = True  # the thread may still run it if it has taken it already
            raise

    def _serve(self, conn: sqlite3.Connection, calls: list[Call[Any]]) -> list[Call[Any]]:
        """Run ``calls`` (on the thread), setting each one's outcome; answers those to run
        again first in the next batch (the others are answered)."""
        raise NotImplementedError

    # -- on the thread -----------------------------------------------------------------------

    def _main(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None]) -> None:
        assert self._stopped is not None
        stopped = self._stopped
        try:
            conn = self._connect()
        except BaseException as exc:
            _answer_soon(loop, _fail_future, opened, translate(exc, f"opening {self.name}"))
            _answer_soon(loop, _finish_future, stopped)
            return
        _answer_soon(loop, _finish_future, opened)
        try:
            self._take_calls(conn, loop)
        finally:
            try:
                conn.close()
            finally:
                _answer_soon(loop, _finish_future, stopped)

    def _take_calls(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        carried: list[Call[Any]] = []
        stopping = False
        while carried or not stopping:
            calls, stopping = self._next_batch(carried, stopping)
            if not calls:
                return
            try:
                carried = self._serve(conn, calls)
            except BaseException as exc:  # a fault of _serve itself: nobody may wait forever
                carried = []
                for call in calls:
                    call.fail(StorageError(f"{self.name} failed: {exc!r}"))
            answered = [call for call in calls if call not in carried]
            _answer_soon(loop, _answer, answered)

    def _next_batch(self, carried: list[Call[Any]], stopping: bool) -> tuple[list[Call[Any]], bool]:
        """The carried calls and what is queued, up to :attr:`batch_size`; waits for one
        when there is nothing. True once the stop was taken (nothing is queued behind it)."""
        calls = list(carried)
        if not calls and not stopping:
            first = self._queue.get()
            if isinstance(first, _Stop):
                return [], True
            calls.append(first)
        while not stopping and len(calls) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Stop):
                stopping = True
            else:
                calls.append(item)
        return calls, stopping


def deadline_in(seconds: float) -> float:
    return time.monotonic() + seconds


def translate(exc: BaseException, doing: str) -> BaseException:
    """A call's error as its caller sees it: SQLite's errors become the service's."""
    if isinstance(exc, (sqlite3.Error, OSError)):
        return sqlite_errors.translate(exc, doing)
    return exc


def _answer_soon(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any
) -> None:
    # the event loop closed: nobody waits for the answer any more
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _answer(calls: list[Call[Any]]) -> None:
    """On the event loop: settle the callers' futures (those still waiting)."""
    for call in calls:
        if call.future.done():  # its caller was cancelled and left
            continue
        if call.error is not None:
            call.future.set_exception(call.error)
        else:
            call.future.set_result(call.value)


def _fail_future(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _finish_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
