"""``omnihook tasks``, ``tasks show ID`` and ``tasks redownload ID``: what the service knows
about tasks, and fetching a failed or deleted video again."""

from __future__ import annotations

import asyncio
import json

import click

from .client import ApiError
from .common import fail, open_client, report_errors, url_option
from .model import Event, Task, TaskPage
from .progress import make_console, task_detail, task_list_table

STATUSES = ("queued", "pending", "submitted", "processing", "succeeded", "failed")


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


@tasks.command()
@click.argument("task_id", metavar="ID")
@click.argument("indexes", metavar="[N ...]", nargs=-1, type=click.IntRange(min=0))
@url_option
@click.pass_context
def redownload(ctx: click.Context, task_id: str, indexes: tuple[int, ...], url: str | None) -> None:
    """Fetch videos of a succeeded task again (all of them by default): those whose download
    failed for good or whose file was deleted, each from a fresh URL asked of the provider."""
    if url is None and ctx.parent is not None:
        url = ctx.parent.params.get("url")
    queued, refused = report_errors(lambda: asyncio.run(_redownload(url, task_id, indexes)))
    console = make_console()
    for index in queued:
        console.print(f"video {index}: queued for download again", markup=False)
    for index, why in refused:
        click.echo(f"video {index}: not queued: {why}", err=True)
    # Asked for by number, every refusal counts; for "all", only having queued nothing does.
    if (indexes and refused) or not queued:
        fail("nothing was queued" if not queued else "some videos were not queued", code=1)


async def _redownload(
    url: str | None, task_id: str, indexes: tuple[int, ...]
) -> tuple[list[int], list[tuple[int, str]]]:
    async with open_client(url) as api:
        task = await api.get_task(task_id)  # the argument may be an external id
        wanted = list(indexes) or [video["index"] for video in task["videos"]]
        queued: list[int] = []
        refused: list[tuple[int, str]] = []
        for index in wanted:
            try:
                await api.redownload_video(task["id"], index)
            except ApiError as exc:
                if exc.status_code not in (404, 409):
                    raise
                refused.append((index, exc.message))
            else:
                queued.append(index)
        return queued, refused
