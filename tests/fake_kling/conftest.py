"""Fixtures for the simulated provider: config → app (lifespan running) → client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from service.fake_kling import FakeKlingConfig, create_fake_kling_app

from .helpers import AUTH, BASE


@pytest.fixture
def config() -> FakeKlingConfig:
    """Open access, fast steps; override in a module or with ``pytest.mark.parametrize``."""
    return FakeKlingConfig(step_seconds=0.02)


@pytest.fixture
async def fake_app(config: FakeKlingConfig) -> AsyncIterator[Starlette]:
    app = create_fake_kling_app(config)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(fake_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fake_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=AUTH) as client:
        yield client
