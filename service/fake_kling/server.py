"""Running the simulated provider as a blocking server (``omnihook fake-kling``)."""

from __future__ import annotations

import uvicorn

from ..loopback import base_url_of, bind_socket
from .app import create_fake_kling_app
from .config import FakeKlingConfig


def run(host: str, port: int, config: FakeKlingConfig) -> None:
    """Serve a simulated Kling on ``host:port`` until SIGINT/SIGTERM; prints its base URL.

    ``port=0`` picks a free port; the printed URL shows which.
    """
    app = create_fake_kling_app(config)
    sock = bind_socket(host, port)
    base_url = base_url_of(sock)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="on"))
    print(f"fake Kling ({config.profile} profile) on {base_url}", flush=True)
    print(f"  base URL: {base_url}   gateway-style base URL: {base_url}/kling", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
