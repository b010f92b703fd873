"""``omnihook fake-kling``: the simulated provider, for local development."""

from __future__ import annotations

import click

from .common import fail


@click.command("fake-kling")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--profile",
    default="kling",
    show_default=True,
    type=click.Choice(["kling", "newapi", "apimodels"]),
    help="API shape to speak: official Kling, a new-api gateway (EzModel) or apimodels.",
)
@click.option(
    "--own-task-ids",
    is_flag=True,
    help="newapi: hand out the gateway's own task ids instead of Kling's.",
)
@click.option(
    "--callback-retry-window",
    default=1800.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="apimodels: seconds during which a callback not answered 200 is retried.",
)
@click.option(
    "--step-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Time between a task's states.",
)
@click.option("--api-key", default=None, help="Accept only this bearer key (default: any).")
@click.option("--access-key", default=None, help="JWT access key (with --secret-key).")
@click.option("--secret-key", default=None, help="JWT secret key (with --access-key).")
@click.option(
    "--webhook-secret", default=None, metavar="whsec_...", help="Sign callbacks with this secret."
)
@click.option(
    "--max-concurrent",
    default=None,
    type=click.IntRange(min=0),
    help="Refuse creates beyond this many running tasks (code 1303).",
)
def fake_kling(
    host: str,
    port: int,
    profile: str,
    own_task_ids: bool,
    callback_retry_window: float,
    step_seconds: float,
    api_key: str | None,
    access_key: str | None,
    secret_key: str | None,
    webhook_secret: str | None,
    max_concurrent: int | None,
) -> None:
    """Run the simulated Kling provider. Steer tasks with [sim:...] directives in prompts."""
    from service.fake_kling import server
    from service.fake_kling.config import FakeKlingConfig

    try:
        config = FakeKlingConfig(
            api_key=api_key,
            access_key=access_key,
            secret_key=secret_key,
            webhook_secret=webhook_secret,
            step_seconds=step_seconds,
            max_concurrent=max_concurrent,
            profile=profile,
            own_task_ids=own_task_ids,
            callback_retry_window=callback_retry_window,
        )
    except ValueError as exc:  # the config's own rules: its message says what to fix
        fail(str(exc), code=2)
    server.run(host, port, config)
