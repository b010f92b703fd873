"""How long this process leaves the provider's query endpoint alone after a rate limit."""

from __future__ import annotations

from datetime import datetime


class ProviderBackoff:
    """Until when this process leaves the provider's query endpoint alone."""

    def __init__(self) -> None:
        self._until: datetime | None = None

    def hold(self, until: datetime) -> None:
        if self._until is None or until > self._until:
            self._until = until

    def remaining(self, now: datetime) -> float:
        """Seconds left to wait (0 when the provider may be called)."""
        if self._until is None:
            return 0.0
        return max((self._until - now).total_seconds(), 0.0)
