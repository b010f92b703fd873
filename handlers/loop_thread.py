"""An event loop of its own, in a daemon thread, where one async handler's runs run.

Async handlers do not run on the process's main loop, the one that answers callbacks, nor on
each other's: the host gives each handler a loop of its own. A handler that blocks its loop
(``time.sleep`` or CPU work inside ``async def``) then stalls only this loop, so only its own
runs, and the host can tell (a heartbeat stops) and replace it with a fresh one.

The loop keeps a heartbeat (a callback every ``heartbeat`` seconds) and the runs submitted to
it, so the watchdog and the host, from other threads, can ask how long it has been silent and
which run's step is executing right now. A submission that has not started yet can be taken
back (``withdraw``): a run queued behind a blocked loop then goes to its replacement instead,
and never runs twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from handlers.hosted_run import HostedRun

logger = logging.getLogger(__name__)

# How long a stopping loop gives the tasks it cancelled (a handler's ``finally``) to end.
_CANCEL_GRACE = 1.0


@dataclass(frozen=True)
class Outcome:
    """What a hosted call ended with. Exceptions travel as values, so that one a Task would
    re-raise out of its loop (``SystemExit``, ``KeyboardInterrupt``) cannot end the loop."""

    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class _State(enum.Enum):
    PENDING = "pending"
    STARTED = "started"
    WITHDRAWN = "withdrawn"


@dataclass(eq=False)
class Submission:
    """One call submitted to a loop. ``future`` is its outcome; cancel it to cancel the call."""

    run: HostedRun
    future: concurrent.futures.Future[Outcome] = field(init=False)
    state: _State = _State.PENDING  # changed under the loop's lock only


class HandlerLoop:
    """Started at once; ``retire`` lets it end once its runs have, ``close`` ends it soon."""

    def __init__(self, name: str, *, heartbeat: float = 0.1) -> None:
        self.name = name
        self._heartbeat = heartbeat
        self._loop = asyncio.new_event_loop()
        # Guards what follows, which the host and the watchdog read from other threads.
        self._lock = threading.Lock()
        self._submitted: set[Submission] = set()  # not yet ended nor withdrawn
        self._started: dict[asyncio.Task[Any], HostedRun] = {}  # by the task running it
        self._retired = False
        self._winding_up = False  # the loop thread's own
        self._last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        """Wait (blocking) up to ``timeout`` seconds for the loop's thread to end."""
        self._thread.join(timeout)

    def silent_for(self) -> float:
        """Seconds since the loop last ran its heartbeat (about ``heartbeat`` when it is well)."""
        return time.monotonic() - self._last_beat

    def last_beat(self) -> float:
        return self._last_beat

    def blocker(self) -> HostedRun | None:
        """The run whose step is executing on the loop now (the one blocking it, when it is
        silent), or None: no run's code is executing, or the loop runs something else."""
        task = asyncio.current_task(self._loop)
        with self._lock:
            return self._started.get(task) if task is not None else None

    def in_flight(self) -> list[HostedRun]:
        with self._lock:
            return [submission.run for submission in self._submitted]

    def submit(self, call: Callable[[], Awaitable[Any]], run: HostedRun) -> Submission:
        """Run ``await call()`` on this loop. Cancelling the submission's future cancels the
        run's task there.

        ``call`` is invoked on the loop, so even creating the coroutine happens off the caller's
        loop; the task copies the caller's contextvars (``run_coroutine_threadsafe`` schedules
        from the caller's context, and a task copies the context it is created in).
        """
        submission = Submission(run)
        with self._lock:
            if self._retired:
                raise RuntimeError(f"handler loop {self.name} takes no more runs")
            self._submitted.add(submission)
        submission.future = asyncio.run_coroutine_threadsafe(
            self._hosted(call, submission), self._loop
        )
        return submission

    def withdraw(self, submission: Submission) -> bool:
        """Take back a submission that has not started: True when it never will run here."""
        with self._lock:
            if submission.state is not _State.PENDING:
                return False
            self._forget(submission)
            idle = self._retired and not self._submitted
        submission.future.cancel()
        if idle:
            self._call_soon(self._stop)
        return True

    def retire(self) -> None:
        """Take no more runs: stop once the runs still on it have ended (a blocked one may
        never; the thread is a daemon and is abandoned then)."""
        with self._lock:
            self._retired = True
            idle = not self._submitted
        if idle:
            self._call_soon(self._stop)

    def close(self) -> None:
        """Cancel every run on the loop and stop it once they have ended. Does not wait."""
        self.retire()
        self._call_soon(self._cancel_all)

    async def _hosted(self, call: Callable[[], Awaitable[Any]], submission: Submission) -> Outcome:
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            if submission.state is not _State.PENDING:
                return Outcome()  # withdrawn: it runs elsewhere, or nowhere
            submission.state = _State.STARTED
            self._started[task] = submission.run
        try:
            return Outcome(value=await call())
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # delivered to the awaiting side, never out of the loop
            return Outcome(error=exc)
        finally:
            with self._lock:
                del self._started[task]
                self._submitted.discard(submission)
                finished = self._retired and not self._submitted
            if finished:
                self._stop()

    def _forget(self, submission: Submission) -> None:
        """Under the lock: a submission that will never run."""
        submission.state = _State.WITHDRAWN
        self._submitted.discard(submission)

    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        self._loop.call_later(self._heartbeat, self._beat)

    def _cancel_all(self) -> None:
        # The runs only: this may run after the loop stopped, while _serve finishes up on it.
        # Tasks the handlers started themselves are cancelled there, once the runs have ended.
        with self._lock:
            started = list(self._started)
            unstarted = [s for s in self._submitted if s.state is _State.PENDING]
            for submission in unstarted:
                self._forget(submission)
            idle = not self._submitted
        for task in started:
            task.cancel()
        for submission in unstarted:
            submission.future.cancel()
        if idle:
            self._stop()

    def _stop(self) -> None:
        # Once run_forever has returned, _serve runs the loop to wind up: stopping it then
        # would only break that.
        if not self._winding_up:
            self._loop.stop()

    def _call_soon(self, callback: Callable[[], object]) -> None:
        # RuntimeError: the loop has already closed, so there is nothing left to stop.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback)

    def _serve(self) -> None:
        loop = self._loop
        loop.call_soon(self._beat)
        try:
            loop.run_forever()
            self._winding_up = True
            # Whatever handlers left behind (tasks of their own) is cancelled, not leaked.
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=_CANCEL_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except (Exception, asyncio.CancelledError):  # a thread must not die of it unreported
            logger.exception(
                "handler loop %s ended with an error",
                self.name,
                extra={"action": "handler.loop_error"},
            )
        finally:
            loop.close()
