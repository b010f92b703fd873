"""API shapes the simulator can speak; see :mod:`.base` for the contract."""

from __future__ import annotations

from collections.abc import Callable

from ..config import FakeKlingConfig
from .apimodels import ApiModelsProfile
from .base import Profile
from .kling import KlingProfile
from .newapi import NewApiProfile

PROFILES: dict[str, Callable[[FakeKlingConfig], Profile]] = {
    "kling": lambda config: KlingProfile(),
    "newapi": NewApiProfile,
    "apimodels": lambda config: ApiModelsProfile(),
}


def get_profile(config: FakeKlingConfig) -> Profile:
    """The profile ``config`` names, set up for it."""
    try:
        factory = PROFILES[config.profile]
    except KeyError:
        raise ValueError(
            f"unknown profile {config.profile!r}; choose one of {', '.join(PROFILES)}"
        ) from None
    return factory(config)


__all__ = ["PROFILES", "Profile", "get_profile"]
