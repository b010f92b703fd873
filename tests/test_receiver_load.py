"""The receiver's load, as the in-process worker reads it."""

from __future__ import annotations

import pytest

from service.receiver.load import QUIET_AFTER, ReceiverLoad


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_at_start() -> None:
    load = ReceiverLoad(Clock())
    assert not load.busy
    assert load.quiet_in() == 0.0


def test_busy_while_a_callback_is_handled_and_for_a_moment_after() -> None:
    clock = Clock()
    load = ReceiverLoad(clock)
    with load.receiving():
        assert load.busy
        assert load.quiet_in() == QUIET_AFTER
        clock.now += 10  # a slow one: still busy
        assert load.busy
    assert load.busy  # the gap between two callbacks of a burst
    clock.now += QUIET_AFTER / 2
    assert load.busy
    assert load.quiet_in() == pytest.approx(QUIET_AFTER / 2)
    clock.now += QUIET_AFTER
    assert not load.busy
    assert load.quiet_in() == 0.0


def test_overlapping_callbacks_count_until_the_last_ends() -> None:
    clock = Clock()
    load = ReceiverLoad(clock)
    with load.receiving():
        with load.receiving():
            pass
        clock.now += 5 * QUIET_AFTER
        assert load.busy  # the first is still being handled
    clock.now += QUIET_AFTER
    assert not load.busy


def test_a_failing_callback_still_ends() -> None:
    clock = Clock()
    load = ReceiverLoad(clock)
    with pytest.raises(RuntimeError), load.receiving():
        raise RuntimeError("boom")
    clock.now += QUIET_AFTER
    assert not load.busy
