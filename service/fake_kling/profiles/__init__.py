"""API shapes the simulator can speak; see :mod:`.base` for the contract."""

from __future__ import annotations

from collections.abc import Callable

from .base import Profile
from .kling import KlingProfile

PROFILES: dict[str, Callable[[], Profile]] = {
    "kling": KlingProfile,
}


def get_profile(name: str) -> Profile:
    try:
        factory = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
    return factory()


__all__ = ["PROFILES", "Profile", "get_profile"]
