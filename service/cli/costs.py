"""``omnihook costs``: what tasks were estimated to cost against what the provider billed, by
day, model or metadata key, and where each budget stands."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click
from rich.console import Group
from rich.table import Table

from .common import open_client, report_errors, url_option
from .progress import COMPACT, make_console


@click.command()
@url_option
@click.option("--since", default=None, metavar="YYYY-MM-DD", help="[default: this month's 1st]")
@click.option("--until", default=None, metavar="YYYY-MM-DD", help="Exclusive [default: tomorrow]")
@click.option(
    "--by",
    default="day",
    show_default=True,
    help="day, model, or metadata.KEY (e.g. metadata.owner).",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def costs(url: str | None, since: str | None, until: str | None, by: str, output: str) -> None:
    """Estimated against billed costs, grouped, and each budget's current window."""
    summary = report_errors(lambda: asyncio.run(_costs(url, since, until, by)))
    console = make_console()
    if output == "json":
        console.print_json(json.dumps(summary))
        return
    console.print(costs_view(summary))


async def _costs(url: str | None, since: str | None, until: str | None, by: str) -> Any:
    async with open_client(url) as api:
        return await api.costs(since=since, until=until, by=by)


def costs_view(summary: dict[str, Any]) -> Group:
    currency = summary["currency"]
    table = Table(
        title=f"costs {summary['since'][:10]} .. {summary['until'][:10]} by {summary['by']}",
        **COMPACT,
    )
    for column in (summary["by"], "tasks", f"estimated ({currency})", "unpriced", "billed"):
        table.add_column(column, overflow="fold")
    table.add_column("billed units", justify="right")
    table.add_column("balance paid", justify="right")
    for group in [*summary["groups"], summary["total"]]:
        table.add_row(
            group["key"],
            str(group["tasks"]),
            group["estimated"],
            str(group["unpriced_tasks"]),
            str(group["billed_tasks"]),
            group["billed_units"],
            group["billed_balance"],
            style="bold" if group is summary["total"] else None,
        )
    parts: list[Any] = [table]
    if summary.get("truncated"):
        parts.append("[yellow]only the newest tasks were read: narrow --since/--until[/]")
    if summary["budgets"]:
        budgets = Table(title="budgets", **COMPACT)
        for column in ("budget", "window", "spent", "limit", "used"):
            budgets.add_column(column)
        for budget in summary["budgets"]:
            used = budget["percent"]
            style = "red" if used >= 100 else "yellow" if used >= 80 else None
            budgets.add_row(
                budget["budget"],
                budget["window"],
                f"{budget['spent']} {budget['currency']}",
                budget["limit"],
                f"{used:.0f} %",
                style=style,
            )
        parts.append(budgets)
    return Group(*parts)
