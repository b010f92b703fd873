"""How a job says it did not finish: try again later, or give up for good.

Any other exception is a bug or an unforeseen failure; the worker logs it and retries the job on
its schedule, because giving up on a notification or a paid-for video because of a bug would
lose it.
"""

from __future__ import annotations

from service.errors import OmnihookError


class RetryLater(OmnihookError):
    """Not now: retry on the job's schedule (or after ``delay`` seconds when given)."""

    def __init__(self, error: str, *, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(error)


class GiveUp(OmnihookError):
    """Retrying cannot help: mark the job failed now."""
