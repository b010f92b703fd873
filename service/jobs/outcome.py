"""How a job says it did not finish: try again later, or give up for good.

Any other exception is a bug or an unforeseen failure; the worker logs it and retries the job on
its schedule, because giving up on a notification or a paid-for video because of a bug would
lose it.
"""

from __future__ import annotations

from enum import Enum

from service.errors import OmnihookError


class Ended(Enum):
    """What a run returns when it wrote its job's end itself, in the transaction of its own
    results (``storage.base.JobEnd``): the worker writes nothing more for the job. A run that
    returns None has succeeded, and the worker marks its job so."""

    RECORDED = "recorded"


class RetryLater(OmnihookError):
    """Not now: retry on the job's schedule (or after ``delay`` seconds when given)."""

    def __init__(self, error: str, *, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(error)


class GiveUp(OmnihookError):
    """Retrying cannot help: mark the job failed now."""
