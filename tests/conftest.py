"""Fixtures shared by the unit tests: the services of one process on the in-memory backend."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from handlers import on
from handlers.registry import HandlerRegistry
from service.apply.events import EventEmitter
from service.bootstrap import open_services
from service.services import Services
from service.settings import load_settings
from storage.memory.backend import MemoryStorage


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = load_settings(
        database_url="memory://",
        media_dir=tmp_path / "media",
        kling_api_key="k",
        job_lease_seconds=30,
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    async with open_services(
        settings, storage=MemoryStorage(), registry=HandlerRegistry(), transport=transport
    ) as opened:
        yield opened


@on("*")
def everything(event: object) -> None:
    """A handler of every event, so plans show the handler runs they cause."""


@pytest.fixture
def emitter(tmp_path: Path) -> EventEmitter:
    registry = HandlerRegistry()
    registry.register(everything, source="test")
    return EventEmitter(registry, tmp_path)


@pytest.fixture
def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client one
    that trusts it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj"]
    names = ["/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [openssl, *request, *names, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    return server_side, ssl.create_default_context(cafile=str(cert))
