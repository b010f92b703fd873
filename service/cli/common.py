"""What every command shares: where the service is, how errors reach the user."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import ConfigurationError

from .client import ApiError, ClientError, OmnihookClient
from .progress import make_console

DEFAULT_URL = "http://127.0.0.1:8000"
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class ClientSettings(BaseSettings):
    """Where a client command finds the service: ``OMNIHOOK_URL``, ``OMNIHOOK_API_TOKEN``.

    Read like the service's own settings (environment, then ``.env``), so a token put in
    ``.env`` for ``omnihook serve`` also serves the client commands run beside it.
    """

    model_config = SettingsConfigDict(env_prefix="OMNIHOOK_", env_file=".env", extra="ignore")

    url: str = DEFAULT_URL
    api_token: SecretStr | None = None


def url_option(function: F) -> F:
    return click.option(
        "--url",
        metavar="URL",
        default=None,
        help=f"Base URL of the omnihook service  [default: $OMNIHOOK_URL, else {DEFAULT_URL}]",
    )(function)


@dataclass(frozen=True)
class CliEnvironment:
    """What a caller may hand the command line as ``obj``: the HTTP transport of its client.

    The seam tests use to put a fake API (``httpx.MockTransport``) behind the real commands.
    """

    transport: httpx.AsyncBaseTransport | None = None


def open_client(url: str | None) -> OmnihookClient:
    settings = ClientSettings(url=url) if url else ClientSettings()
    token = settings.api_token.get_secret_value() if settings.api_token else None
    context = click.get_current_context(silent=True)
    environment = context.find_object(CliEnvironment) if context else None
    transport = environment.transport if environment else None
    return OmnihookClient(settings.url, token=token, transport=transport)


def fail(message: str, *, code: int, details: list[str] | None = None) -> NoReturn:
    """Print a red message on stderr and leave with ``code``; never a traceback."""
    console = make_console(stderr=True)
    console.print(f"error: {message}", style="red", markup=False, soft_wrap=True)
    for line in details or []:
        console.print(f"  - {line}", style="red", markup=False, soft_wrap=True)
    raise SystemExit(code)


def report_errors(run: Callable[[], T]) -> T:
    """Run a command body, turning our expected errors into one clear line and an exit code."""
    try:
        return run()
    except ConfigurationError as exc:
        fail(str(exc), code=2)
    except ApiError as exc:
        fail(str(exc), code=1, details=exc.details())
    except ClientError as exc:
        fail(str(exc), code=1)


def run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived coroutine until Ctrl+C or SIGTERM (how process managers stop us).

    Both cancel the coroutine, so its ``finally`` blocks and context managers clean up.
    """

    async def guarded() -> None:
        task = asyncio.current_task()
        if task is not None:
            # Not available on every platform or outside the main thread: Ctrl+C still works.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await main

    # Ctrl+C is KeyboardInterrupt after asyncio.run cancelled the task; SIGTERM is the cancel.
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(guarded())
