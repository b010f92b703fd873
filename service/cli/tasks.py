"""``omnihook tasks`` and ``omnihook tasks show ID``: what the service knows about tasks."""

from __future__ import annotations

import asyncio
import json

import click

from .common import open_client, report_errors, url_option
from .model import Event, Task, TaskPage
from .progress import make_console, task_detail, task_list_table

STATUSES = ("pending", "submitted", "processing", "succeeded", "failed")


@click.group(invoke_without_command=True)
@url_option
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only this state.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--cursor", default=None, help="Continue a listing where the last page ended.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def tasks(
    ctx: click.Context,
    url: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
    output: str,
) -> None:
    """List tasks, newest first (or `tasks show ID` for one task's timeline)."""
    if ctx.invoked_subcommand is not None:
        return
    page = report_errors(lambda: asyncio.run(_list(url, status, limit, cursor)))
    console = make_console()
    if output == "json":
        console.print_json(json.dumps(page))
        return
    if not page["tasks"]:
        console.print("no tasks" + (f" with status {status}" if status else ""))
    else:
        console.print(task_list_table(page["tasks"]))
    if page.get("next_cursor"):
        console.print(f"more: omnihook tasks --cursor {page['next_cursor']}", markup=False)


async def _list(url: str | None, status: str | None, limit: int, cursor: str | None) -> TaskPage:
    async with open_client(url) as api:
        return await api.list_tasks(status=status, limit=limit, cursor=cursor)


@tasks.command()
@click.argument("task_id", metavar="ID")
@url_option
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def show(ctx: click.Context, task_id: str, url: str | None, output: str) -> None:
    """One task (by id or external id): its videos, timeline of events and handler runs."""
    # `omnihook tasks --url X show ID` works as well as `omnihook tasks show ID --url X`.
    if url is None and ctx.parent is not None:
        url = ctx.parent.params.get("url")
    task, events = report_errors(lambda: asyncio.run(_show(url, task_id)))
    console = make_console()
    if output == "json":
        console.print_json(json.dumps({**task, "events": events}))
    else:
        console.print(task_detail(task, events))


async def _show(url: str | None, task_id: str) -> tuple[Task, list[Event]]:
    async with open_client(url) as api:
        task = await api.get_task(task_id)
        # The task's own id: the argument may have been an external id.
        return task, await api.task_events(task["id"])
