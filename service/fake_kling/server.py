"""Running the simulated provider as a blocking server (``omnihook fake-kling``)."""

from __future__ import annotations

import uvicorn

from ..loopback import base_url_of, bind_socket
from .app import create_fake_kling_app
from .config import FakeKlingConfig


def client_base_url(profile: str, base_url: str) -> str:
    """The base URL omnihook's client for ``profile`` is given: new-api gateways serve the
    Kling paths under ``/kling``; the others at the root (Kling's also under ``/kling``)."""
    return f"{base_url}/kling" if profile == "newapi" else base_url


def run(host: str, port: int, config: FakeKlingConfig) -> None:
    """Serve a simulated Kling on ``host:port`` until SIGINT/SIGTERM; prints its base URL.

    ``port=0`` picks a free port; the printed URL shows which.
    """
    app = create_fake_kling_app(config)
    sock = bind_socket(host, port)
    # Listening before the URL is printed: a client that reads it and connects at once is
    # queued until uvicorn accepts, instead of refused.
    sock.listen(2048)
    base_url = base_url_of(sock)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="on"))
    print(f"fake Kling ({config.profile} profile) on {base_url}", flush=True)
    # With --max-concurrent the account answers 1303 beyond its slots: omnihook queues the
    # tasks beyond them when told how many there are.
    slots = (
        f" OMNIHOOK_PROVIDER_CONCURRENCY={config.max_concurrent}" if config.max_concurrent else ""
    )
    print(
        f"  for omnihook: OMNIHOOK_PROVIDER={config.profile} "
        f"OMNIHOOK_KLING_BASE_URL={client_base_url(config.profile, base_url)}{slots}",
        flush=True,
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
