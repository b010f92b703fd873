"""The ``omnihook`` command line: one module per command group, errors reported in one place.

Expected failures (bad configuration, an unreachable service, an API error) print one red
line on stderr and exit 2 (configuration) or 1; tracebacks are kept for real bugs.
"""

from __future__ import annotations

from typing import Any

import click

from .common import report_errors
from .costs import costs
from .demo import demo
from .fake_kling import fake_kling
from .handlers import handlers
from .notifications import notifications
from .serve import serve, worker
from .submit import submit
from .tasks import tasks
from .webhooks import webhooks

__all__ = ["cli", "main"]


class _OmnihookGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        # Commands that build settings outside report_errors (serve, worker) are covered here.
        return report_errors(lambda: super(_OmnihookGroup, self).invoke(ctx))


@click.group(cls=_OmnihookGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="omnihook", prog_name="omnihook")
def cli() -> None:
    """omnihook: a self-hosted, webhook-driven event service for Kling Omni Video."""


for command in (
    serve,
    worker,
    submit,
    tasks,
    costs,
    handlers,
    notifications,
    webhooks,
    fake_kling,
    demo,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="omnihook")
