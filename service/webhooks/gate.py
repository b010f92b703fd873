"""Per-endpoint concurrency in one worker process: no endpoint holds up the others.

A worker has a fixed number of slots. Without a limit, a burst of deliveries to one endpoint
that never answers would take every slot for the length of a timeout, and every other endpoint
(and every other kind of job) would wait behind it: head-of-line blocking. The gate lets at
most ``limit`` attempts per endpoint run at once (``OMNIHOOK_WEBHOOK_ENDPOINT_CONCURRENCY``; one
while the endpoint is failing, like a half-open circuit breaker). A delivery job that finds
its endpoint full does not wait for it in a worker slot, except briefly when the endpoint
answers fast: it is handed back to the queue until the endpoint's estimated next free turn.
Turns are handed out one after the other (fair queueing at the endpoint's observed pace), so a
backlog for a slow endpoint comes back spread out, behind the deliveries of the other endpoints,
instead of all at once.

An endpoint whose attempt failed or timed out is throttled, a circuit breaker in this process:
the circuit opens for a backoff (:data:`BREAKER_FIRST` doubling at each failed probe up to
:data:`BREAKER_CEILING`: the probe interval) during which its deliveries are handed back until
it closes, then lets one attempt through (a probe) at a time; a success closes it again. A
delivery whose own retry schedule made it due may probe the open circuit (its schedule spaced
it out already); its failure keeps the circuit open for the current interval but does not
double it, nor do the failures of attempts already in flight when the circuit opened. An
endpoint whose attempt has been waiting for its answer for :data:`SLOW` seconds gets one
attempt at a time too: before its first timeout is known, a hung endpoint does not take more
than its one place.

While the endpoint fails, or an attempt hangs longer than its attempts usually take, no turns
are reserved (their pace is not known, and turns reserved at the pace of timeouts would add up
to minutes for a backlog): a job handed back comes back at the next probe (never later than the
probe interval) or once the hung attempt has waited twice as long (at the latest, its
timeout). So once a probe succeeds the
backlog is back within that interval and goes at the endpoint's healthy pace (what its timeouts
took is forgotten). The jobs handed back are not woken early by the success: that would take a
change of the queue's storage.

Times here are the process's monotonic clock: they measure real attempts, never the (possibly
simulated) clock of the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field

# how long a job may wait in its worker slot for a fast endpoint to free one of its own
PATIENCE = 0.25
MIN_TURN = 0.05  # seconds: the shortest hand-back
_SMOOTHING = 0.3  # weight of the newest attempt in the moving average of durations
SLOW = 0.5  # seconds: an attempt still waiting for its answer makes its endpoint suspect
BREAKER_FIRST = 1.0  # seconds the circuit stays open after a first failure
BREAKER_CEILING = 60.0  # ...doubling at each failure in a row, up to this


@dataclass(frozen=True)
class _Attempt:
    """The attempt running in this task, for :meth:`EndpointGate.settle`."""

    endpoint_id: str
    started: float
    through_open: bool  # let through an open circuit by its own retry schedule


_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("endpoint_attempt", default=None)


@dataclass
class _Endpoint:
    in_flight: dict[int, float] = field(default_factory=dict)  # attempt → its start
    average: float | None = None  # seconds an attempt takes, smoothed
    next_turn: float = 0.0
    # jobs waiting in their slot for room, first come first served: a freed place wakes one
    # (waking them all would have all but one wait again, at every attempt)
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)
    failures: int = 0  # attempts that failed in a row (timeouts included)
    open_until: float = 0.0  # no attempt before this: the circuit is open
    spell: float = 0.0  # seconds the circuit was last opened for: the current probe interval
    opened_at: float = 0.0  # when the spell last changed

    def longest_in_flight(self, now: float) -> float:
        return max((now - start for start in self.in_flight.values()), default=0.0)

    def wake_next(self) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class EndpointGate:
    def __init__(self, *, timeout: float) -> None:
        self._timeout = timeout
        self._endpoints: dict[str, _Endpoint] = {}
        self._counter = 0

    def in_flight(self, endpoint_id: str) -> int:
        state = self._endpoints.get(endpoint_id)
        return 0 if state is None else len(state.in_flight)

    @contextlib.asynccontextmanager
    async def slot(
        self, endpoint_id: str, limit: int, *, retry: bool = False
    ) -> AsyncIterator[bool]:
        """``async with gate.slot(id, limit) as entered``: ``entered`` is False when the
        endpoint stayed full or its circuit is open (hand the job back, see
        :meth:`turn_delay`). ``retry``: the delivery failed before and its own schedule made it
        due: it may probe an open circuit (the schedule already spaced it out)."""
        state = self._endpoints.setdefault(endpoint_id, _Endpoint())
        may_try = retry or time.monotonic() >= state.open_until
        if not may_try or not await self._wait_for_room(state, self._limit(state, limit)):
            yield False
            return
        self._counter += 1
        attempt = self._counter
        started = time.monotonic()
        state.in_flight[attempt] = started
        # checked again at the start: room may have been awaited
        token = _ATTEMPT.set(
            _Attempt(endpoint_id, started, through_open=started < state.open_until)
        )
        try:
            yield True
        finally:
            _ATTEMPT.reset(token)
            del state.in_flight[attempt]
            took = time.monotonic() - started
            old = state.average
            state.average = took if old is None else old + _SMOOTHING * (took - old)
            state.wake_next()

    def settle(self, endpoint_id: str, *, succeeded: bool) -> None:
        """What an attempt came to: a success closes the endpoint's circuit, a failure (or a
        timeout) opens it for a backoff that doubles at each failed probe. The failure of an
        attempt that is no probe (let through the open circuit by its own retry schedule, or
        started before the circuit last opened) keeps it open for the current backoff without
        doubling it: a backlog of them would otherwise take the backoff to its ceiling in a few
        seconds. Called outside :meth:`slot` (or for another endpoint), it counts as a probe."""
        state = self._endpoints.setdefault(endpoint_id, _Endpoint())
        now = time.monotonic()
        if succeeded:
            if state.failures:  # recovered: turns are handed out from now on, at its pace now
                state.next_turn = now
                state.average = None  # the timeouts of its failing spell are not its pace
            state.failures = 0
            state.open_until = 0.0
            state.spell = 0.0
            return
        attempt = _ATTEMPT.get()
        probe = (
            attempt is None
            or attempt.endpoint_id != endpoint_id
            or not (attempt.through_open or attempt.started < state.opened_at)
        )
        state.failures += 1
        if probe or not state.spell:
            state.spell = min(state.spell * 2, BREAKER_CEILING) if state.spell else BREAKER_FIRST
            state.opened_at = now
        state.open_until = max(state.open_until, now + state.spell)

    def throttled(self, endpoint_id: str) -> bool:
        """Whether the endpoint is held to one attempt at a time (or none, its circuit open)."""
        state = self._endpoints.get(endpoint_id)
        return state is not None and self._limit(state, 2) == 1

    def _limit(self, state: _Endpoint, limit: int) -> int:
        """One attempt at a time for an endpoint failing or slow to answer."""
        if state.failures or state.longest_in_flight(time.monotonic()) >= SLOW:
            return 1
        return limit

    async def _wait_for_room(self, state: _Endpoint, limit: int) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE
        while len(state.in_flight) >= limit:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._estimate(state) > PATIENCE:
                return False  # slow: a slot held while waiting would block other work
            waiter: asyncio.Future[None] = loop.create_future()
            state.waiting.append(waiter)
            try:
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                if waiter.done() and not waiter.cancelled():
                    state.wake_next()  # woken as time ran out: the place goes to the next
                return False
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    state.wake_next()
                raise
            finally:
                waiter.cancel()  # no-op once woken; a timed-out one is skipped by wake_next
        return True

    def turn_delay(self, endpoint_id: str, limit: int) -> float:
        """Seconds until the endpoint's next free turn, reserving it: successive callers get
        successive turns, at the pace of the endpoint's attempts, with a little jitter.

        While the endpoint fails, nothing is reserved: every job comes back when the circuit
        lets its next probe through (or, a probe in flight, about when it should have
        answered), never later than the current probe interval. Turns reserved behind an open
        circuit would add up (a backlog times the pace of timeouts) and keep the backlog away
        long after the endpoint answers again. Nor while an attempt hangs beyond its usual
        time: the pace is not known yet."""
        state = self._endpoints.setdefault(endpoint_id, _Endpoint())
        now = time.monotonic()
        if state.failures:
            until_probe = state.open_until - now
            if until_probe <= 0:  # half-open: its probe is on its way
                until_probe = min(self._estimate(state), self._timeout)
            delay = max(min(until_probe, state.spell), MIN_TURN)
            return delay * random.uniform(1.0, 1.2)
        hung = state.longest_in_flight(now)
        if hung >= SLOW and hung > (state.average or 0.0):
            # an attempt slower than ever, not answered yet: its pace is unknown (it may be
            # about to time out, and then the circuit opens). Come back when it has taken
            # twice as long, at the latest when it times out, rather than reserve turns at a
            # pace that is only a guess
            delay = max(min(hung, self._timeout - hung), MIN_TURN)
            return delay * random.uniform(1.0, 1.2)
        pace = min(self._estimate(state), self._timeout) / self._limit(state, max(limit, 1))
        start = max(state.next_turn, now)
        state.next_turn = start + max(pace, MIN_TURN / 2)
        delay = max(state.next_turn - now, MIN_TURN)
        return delay * random.uniform(1.0, 1.2)

    def _estimate(self, state: _Endpoint) -> float:
        """How long an attempt of this endpoint takes: what they took, or what the ones in
        flight have taken so far if that is longer (an endpoint that stopped answering)."""
        return max(state.average or 0.0, state.longest_in_flight(time.monotonic()))
