"""The watchdog of the handler loops: it says when one stops answering, and which handler did it.

A thread of its own, so that it sees a blocked handler loop whatever the main loop does. It
watches every loop of the host: each async handler's current one, and the blocked ones the host
left behind. Every ``interval`` it reads each loop's heartbeat; a loop silent for longer than
``threshold`` is blocked: one warning per blocking (``handler.loop_blocked``), naming the run
whose step is executing there (handler and event) and how long so far, then a second one once
the loop answers again (``handler.loop_resumed``) with how long it was blocked in all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from handlers.hosted_run import HostedRun
from handlers.loop_thread import HandlerLoop

logger = logging.getLogger(__name__)


@dataclass
class _Blocking:
    beat: float  # the loop's last heartbeat before it went silent
    blocker: HostedRun | None


class LoopWatchdog:
    def __init__(
        self,
        loops: Callable[[], list[HandlerLoop]],
        *,
        threshold: float,
        interval: float = 0.1,
        on_block: Callable[[], None] = lambda: None,
    ) -> None:
        self._loops = loops
        self._threshold = threshold
        self._interval = interval
        self._on_block = on_block
        self._blocked: dict[str, _Blocking] = {}  # by loop name; this thread's own
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="omnihook-handler-watchdog", daemon=True
        )
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ends within ``interval``; not waited for."""
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            loops = self._loops()
            for loop in loops:
                self._check(loop)
            names = {loop.name for loop in loops}
            for gone in set(self._blocked) - names:  # its thread has ended
                del self._blocked[gone]

    def _check(self, loop: HandlerLoop) -> None:
        silent = loop.silent_for()
        known = self._blocked.get(loop.name)
        if known is not None and loop.last_beat() != known.beat:
            del self._blocked[loop.name]
            self._resumed(loop, known)
        elif known is None and silent > self._threshold:
            blocking = _Blocking(loop.last_beat(), loop.blocker())
            self._blocked[loop.name] = blocking
            self._on_block()
            self._warn(loop, blocking, silent)

    def _warn(self, loop: HandlerLoop, blocking: _Blocking, silent: float) -> None:
        run = blocking.blocker
        if run is not None:
            logger.warning(
                "%s has blocked handler loop %s for %.1fs: it runs blocking code inside async "
                "def (use a sync handler, or asyncio.to_thread)",
                run.about,
                loop.name,
                silent,
                extra={
                    "action": "handler.loop_blocked",
                    "blocked_seconds": silent,
                    **run.log_context,
                },
            )
            return
        runs = ", ".join(sorted({run.handler for run in loop.in_flight()})) or "none"
        logger.warning(
            "handler loop %s has been blocked for %.1fs outside any handler's own step "
            "(handlers with runs on it: %s)",
            loop.name,
            silent,
            runs,
            extra={"action": "handler.loop_blocked", "blocked_seconds": silent},
        )

    def _resumed(self, loop: HandlerLoop, blocking: _Blocking) -> None:
        took = time.monotonic() - blocking.beat
        run = blocking.blocker
        context = run.log_context if run is not None else {}
        logger.warning(
            "handler loop %s answers again after being blocked for about %.1fs%s",
            loop.name,
            took,
            f" by {run.about}" if run is not None else "",
            extra={"action": "handler.loop_resumed", "blocked_seconds": took, **context},
        )
