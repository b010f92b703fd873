"""``omnihook serve`` and ``omnihook worker``: the service's long-running processes."""

from __future__ import annotations

import click
import uvicorn

from handlers.registry import HandlerRegistry
from service.heap import freeze_startup_heap
from service.settings import Settings, load_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--no-worker",
    is_flag=True,
    help="Serve HTTP only; run `omnihook worker` separately (the Procfile's way).",
)
@click.option(
    "--forwarded-allow-ips",
    metavar="IPS",
    default=None,
    help="Proxies trusted for X-Forwarded-* headers  [default: $FORWARDED_ALLOW_IPS, "
    "else 127.0.0.1; '*' behind a platform router]",
)
def serve(host: str, port: int, no_worker: bool, forwarded_allow_ips: str | None) -> None:
    """Run the HTTP service and, unless --no-worker, the background worker."""
    settings = load_settings()  # first: a configuration error is reported before anything runs

    from service.app import create_app  # imported late: `omnihook --help` stays fast
    from service.logs import configure_logging

    configure_logging()
    # Loaded here, before the server starts: a broken plugin stops `serve` with one line naming
    # it and its problem, not a traceback out of the app's lifespan.
    registry = load_plugins(settings)
    app = create_app(settings, with_worker=not no_worker, registry=registry, freeze_heap=True)
    from service.api.body_limits import api_body_limit
    from service.http.server import server_config

    # Behind the guards of service.http: read timeouts, a connection cap, a readable 413.
    config = server_config(
        app,
        host=host,
        port=port,
        body_limit=api_body_limit,
        forwarded_allow_ips=forwarded_allow_ips,
    )
    uvicorn.Server(config).run()


@click.command()
def worker() -> None:
    """Run the background worker alone: downloads, handlers, webhooks, reconciliation."""
    settings = load_settings()

    from service.logs import configure_logging
    from service.worker.loop import run_worker

    configure_logging()
    from .common import run_until_stopped

    load_plugins(settings)  # checked before starting, as `serve` does
    freeze_startup_heap()
    click.echo("omnihook worker running; Ctrl+C to stop", err=True)
    run_until_stopped(run_worker(settings))


def load_plugins(settings: Settings) -> HandlerRegistry:
    """The handler registry the service will run with; ConfigurationError names a bad plugin."""
    from handlers.registry import build_registry

    return build_registry(settings.handler_specs)
