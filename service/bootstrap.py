"""Opening and closing the shared resources of a process (``Services``), once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from handlers.host import HandlerHost
from handlers.registry import HandlerRegistry, build_registry
from service.apply.events import EventEmitter
from service.costs.price_file import price_table_for
from service.egress import GuardedTransport, refusing_jar
from service.kling.auth import auth_from_settings
from service.kling.gateways import provider_client
from service.services import Services
from service.settings import Settings
from storage import Storage, create_storage

log = logging.getLogger(__name__)

PROVIDER_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Video files can be large: a long read timeout per chunk, no overall limit here.
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    storage: Storage | None = None,
    registry: HandlerRegistry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Services]:
    """Everything a web process or a worker needs. ``storage``, ``registry`` and ``transport``
    replace the configured ones (tests)."""
    registry = registry or build_registry(settings.handler_specs)
    prices = price_table_for(settings.provider, settings.price_table)  # a bad file stops here
    store = storage or create_storage(settings.database_url)
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    await store.open()
    try:
        async with (
            httpx.AsyncClient(timeout=PROVIDER_TIMEOUT, transport=transport) as http,
            httpx.AsyncClient(
                timeout=DOWNLOAD_TIMEOUT,
                # Connects only to addresses it checked (unless private networks are allowed).
                transport=transport
                or GuardedTransport(allow_private=settings.allow_private_networks),
                follow_redirects=False,
                cookies=refusing_jar(),  # videos and webhook attempts each stand alone
            ) as downloads,
            HandlerHost(threads=settings.handler_threads) as handler_host,
        ):
            kling = provider_client(
                settings.provider, http, settings.kling_base_url, auth=auth_from_settings(settings)
            )
            yield Services(
                settings=settings,
                storage=store,
                http=http,
                downloads=downloads,
                kling=kling,
                registry=registry,
                emitter=EventEmitter(registry, settings.media_dir),
                handler_host=handler_host,
                prices=prices,
            )
    finally:
        await store.close()
