"""A faithful simulation of Kling Omni Video (kling-api.md §7), for development and tests.

- :class:`FakeKlingConfig`: credentials, pacing, limits, callback signing, API profile
- :func:`create_fake_kling_app`: the Starlette app (run it with :func:`run` or
  :func:`service.loopback.serve_on_loopback`)
- scenario directives in prompts steer each task: see :mod:`service.fake_kling.scenario`
"""

from __future__ import annotations

from .app import create_fake_kling_app
from .config import FakeKlingConfig
from .scenario import Scenario, parse_scenario
from .server import run

__all__ = ["FakeKlingConfig", "Scenario", "create_fake_kling_app", "parse_scenario", "run"]
