"""Outgoing requests keep no cookies: an endpoint's Set-Cookie never comes back with the next
attempt (nor a CDN's with the next video)."""

from __future__ import annotations

from pathlib import Path

import httpx

from handlers.registry import HandlerRegistry
from service.bootstrap import open_services
from service.settings import load_settings
from service.webhooks.attempt import post_signed
from storage.memory.backend import MemoryStorage


async def test_a_cookie_set_by_an_endpoint_is_not_sent_back(tmp_path: Path) -> None:
    seen: list[str | None] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"})

    settings = load_settings(
        database_url="memory://", media_dir=tmp_path / "media", kling_api_key="k"
    )
    async with open_services(
        settings,
        storage=MemoryStorage(),
        registry=HandlerRegistry(),
        transport=httpx.MockTransport(endpoint),
    ) as services:
        for _ in range(2):
            result = await post_signed(
                services.downloads, "https://hooks.example.com/in", b"{}", {}, seconds=5
            )
            assert result.succeeded
        await services.downloads.get("https://hooks.example.com/video.mp4")
    assert seen == [None, None, None]
