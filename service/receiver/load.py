"""How busy the callback receiver is, so that an in-process worker can give way to it.

Kling documents no retry policy for callbacks (kling-api.md §5): a notification that is not
acknowledged in time may never come again. When ``omnihook serve`` runs its worker in the same
process, the two share one interpreter (one core, one GIL), and applying a notification costs
more than receiving it; during a burst of callbacks a worker at full concurrency would slow
every acknowledgement down. So while callbacks are arriving, that worker takes one job at a time
and rests a little between jobs (``service.worker.loop.BUSY_REST``; never stops: the backlog keeps
moving), and it goes back to full concurrency once no callback has begun or ended for
:data:`QUIET_AFTER` seconds. Everything received is stored before it is
acknowledged, so what waits is durable. A standalone ``omnihook worker`` is not slowed down.

Busy means callbacks *coming and going*, not callbacks *open*: one client that keeps a request
open (a body trickling in) does not hold the worker back for longer than :data:`QUIET_AFTER`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

QUIET_AFTER = 0.2  # seconds without a callback beginning or ending before the receiver is idle


class ReceiverLoad:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_seen = -math.inf  # when a callback last began or ended: never yet

    def receiving(self) -> ReceiverLoad:
        """Around the handling of one callback: ``with load.receiving(): ...``. (A plain context
        manager, not a generator: it wraps every callback.)"""
        return self

    def __enter__(self) -> None:
        self._last_seen = self._clock()

    def __exit__(self, *exc_info: object) -> None:
        self._last_seen = self._clock()

    @property
    def busy(self) -> bool:
        """A callback began or ended less than :data:`QUIET_AFTER` ago (the gaps of a burst
        are not quiet)."""
        return self.quiet_in() > 0

    def quiet_in(self) -> float:
        """Seconds until the receiver counts as idle if nothing more happens (0 when idle)."""
        return max(0.0, self._last_seen + QUIET_AFTER - self._clock())
