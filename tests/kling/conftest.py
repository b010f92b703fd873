"""Fixtures of the provider client tests: scripted HTTP clients, recorded sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.kling.scripted import Script, Sleeps


@pytest.fixture
async def http() -> AsyncIterator[Callable[[Script], httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []

    def make(script: Script) -> httpx.AsyncClient:
        opened.append(httpx.AsyncClient(transport=httpx.MockTransport(script)))
        return opened[-1]

    yield make
    for client in opened:
        await client.aclose()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
