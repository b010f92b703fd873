"""How fast this process sends queued tasks, from what the provider answers its creates.

The configured slots are what we know of the account; the provider knows better (another
client may share the account, a resource pack may be smaller). A create answered 1303/1302
("too many tasks at once", "rate limit") puts its task back at the head of the queue and holds
admissions back: at least a second (kling-api.md §4), doubling while the answers stay busy, up
to half a minute, or until one of our tasks ends and frees a slot. While the provider is busy
the queue probes it with one task at a time; the first create it accepts lifts both. An account
problem (credentials refused, arrears, pack used up) holds admissions for a minute: sending
more would only be refused the same way, and the tasks wait, queued, for the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

FIRST_HOLD = 1.0
MAX_HOLD = 30.0
ACCOUNT_HOLD = 60.0


class AdmissionPace:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held_until = 0.0
        self._busy_in_a_row = 0
        self._wake = asyncio.Event()
        self.full_answers = 0  # creates refused for want of room, ever (a metric)

    def busy(self, retry_after: float | None = None) -> float:
        """A create was answered "full" (1303/1302): hold admissions; answers for how long.

        Creates sent together and refused together are one refusal: the hold grows only with
        a refusal that comes after the last hold ended (a probe that found no room yet)."""
        self.full_answers += 1
        now = self._clock()
        if now >= self._held_until:
            self._busy_in_a_row += 1
        hold: float = min(FIRST_HOLD * 2.0 ** (self._busy_in_a_row - 1), MAX_HOLD)
        hold = max(hold, retry_after or 0.0)
        self._held_until = max(self._held_until, now + hold)
        return self._held_until - now

    def account_refused(self) -> None:
        """The account itself was refused (credentials, arrears): hold for a minute."""
        self._busy_in_a_row = max(self._busy_in_a_row, 1)
        self._held_until = max(self._held_until, self._clock() + ACCOUNT_HOLD)

    def accepted(self) -> None:
        """A create was accepted: the provider has room again."""
        self._busy_in_a_row = 0
        self._held_until = 0.0

    def slot_freed(self) -> None:
        """One of our tasks reached a final state: its slot is free, try at once."""
        self._held_until = 0.0
        self._wake.set()

    def nudge(self) -> None:
        """A task stayed queued here: let this process's worker admit what may go at once."""
        self._wake.set()

    def held_for(self) -> float:
        """Seconds left before admissions may go on (0: they may now)."""
        return max(0.0, self._held_until - self._clock())

    @property
    def probing(self) -> bool:
        """Whether the provider said busy lately: send one task at a time until it accepts."""
        return self._busy_in_a_row > 0

    def batch(self, room: int) -> int:
        """How many tasks one admission may take."""
        return min(room, 1) if self.probing else room

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109
        """Until a slot frees in this process, or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
