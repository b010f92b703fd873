"""``omnihook handlers``: the handler plugins this configuration loads, their runs, and retries.

``omnihook handlers`` loads the plugins exactly as ``serve`` and ``worker`` do (built-ins, the
``omnihook.handlers`` entry points, ``OMNIHOOK_HANDLERS``) and lists them, so a broken plugin is
reported here too, in one line. ``handlers runs`` and ``handlers retry`` talk to a running
service over its HTTP API, like ``omnihook tasks``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import quote

import click
from rich.table import Table

from handlers.registry import Handler
from service.settings import Settings, load_settings

from .client import ApiError, OmnihookClient
from .common import fail, open_client, report_errors, url_option
from .model import HandlerRun
from .progress import COMPACT, make_console, short_time, styled_status
from .serve import load_plugins

RUN_STATUSES = ("queued", "running", "succeeded", "failed")


class ListedRun(HandlerRun):
    """A run as ``GET /v1/handler-runs`` lists it: with the task it belongs to."""

    task_id: str | None


@click.group(invoke_without_command=True)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def handlers(ctx: click.Context, output: str) -> None:
    """List the handler plugins loaded, as `serve` and `worker` load them.

    Built-ins, the `omnihook.handlers` entry points, then OMNIHOOK_HANDLERS: each handler with
    its events, timeout and retry delays. `handlers runs` lists their runs and `handlers retry`
    runs them again.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    described = [describe(handler, settings) for handler in load_plugins(settings)]
    console = make_console()
    if output == "json":
        console.print_json(json.dumps(described))
        return
    table = Table(**COMPACT)
    table.add_column("handler", no_wrap=True)  # the name jobs store: keep it whole
    for column in ("source", "events", "timeout", "retries (s)"):
        table.add_column(column, overflow="fold")
    for item in described:
        default = " (default)"
        table.add_row(
            item["name"],
            item["source"],
            ", ".join(item["events"]),
            f"{item['timeout']:g}s" + (default if item["timeout_is_default"] else ""),
            (", ".join(f"{d:g}" for d in item["retries"]) or "none")
            + (default if item["retries_is_default"] else ""),
        )
    console.print(table)
    console.print(f"{len(described)} handler(s) loaded", markup=False)


def describe(handler: Handler, settings: Settings) -> dict[str, Any]:
    """What ``omnihook handlers`` shows of one handler, defaults resolved."""
    retries = handler.retries if handler.retries is not None else settings.handler_retry.delays
    return {
        "name": handler.name,
        "source": handler.source,
        "events": sorted(handler.event_types),
        "timeout": handler.timeout if handler.timeout is not None else settings.handler_timeout,
        "timeout_is_default": handler.timeout is None,
        "retries": list(retries),
        "retries_is_default": handler.retries is None,
    }


@handlers.command()
@url_option
@click.option("--task", "task_id", metavar="ID", default=None, help="Only this task's runs.")
@click.option("--status", type=click.Choice(RUN_STATUSES), default=None, help="Only this state.")
@click.option("--failed", is_flag=True, help="Same as --status failed.")
@click.option("--handler", "handler_name", metavar="NAME", default=None, help="Only this handler.")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--cursor", default=None, help="Continue a listing where the last page ended.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def runs(
    url: str | None,
    task_id: str | None,
    status: str | None,
    failed: bool,
    handler_name: str | None,
    limit: int,
    cursor: str | None,
    output: str,
) -> None:
    """List handler runs, newest tasks first, with the ids `handlers retry` takes."""
    if failed:
        status = "failed"
    params = {"task": task_id, "status": status, "handler": handler_name, "limit": limit}
    page = report_errors(lambda: asyncio.run(_list_page(url, {**params, "cursor": cursor})))
    console = make_console()
    if output == "json":
        console.print_json(json.dumps(page))
        return
    found: list[ListedRun] = page["handler_runs"]
    if found:
        console.print(runs_table(found))
    else:
        console.print("no handler runs" + (f" with status {status}" if status else ""))
    if page.get("next_cursor"):
        console.print(f"more: add --cursor {page['next_cursor']}", markup=False)


def runs_table(found: Sequence[ListedRun]) -> Table:
    table = Table(**COMPACT)
    table.add_column("run", no_wrap=True)  # the id to copy into `handlers retry`
    for column in ("task", "handler", "event", "status", "attempts", "last error", "updated"):
        table.add_column(column, overflow="fold")
    for run in found:
        table.add_row(
            run["id"],
            run.get("task_id") or "-",
            run["handler"],
            run["event_type"],
            styled_status(run["status"]),
            str(run["attempts"]),
            run.get("last_error") or "-",
            short_time(run.get("updated_at")),
        )
    return table


@handlers.command()
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option("--failed", is_flag=True, help="Every failed run (of --task ID, if given).")
@click.option("--task", "task_id", metavar="ID", default=None, help="With --failed: one task.")
@url_option
def retry(run_ids: tuple[str, ...], failed: bool, task_id: str | None, url: str | None) -> None:
    """Run handler runs again from attempt 1: RUN_IDs, or --failed [--task ID]."""
    if run_ids and (failed or task_id):
        raise click.UsageError("give RUN_IDs, or --failed [--task ID], not both")
    if not run_ids and not failed:
        raise click.UsageError("give RUN_IDs, or --failed (with --task ID for one task's runs)")
    retried, problems = report_errors(
        lambda: asyncio.run(_retry(url, list(run_ids), task_id if failed else None, failed))
    )
    console = make_console()
    if failed and not retried and not problems:
        console.print("no failed handler runs" + (f" of task {task_id}" if task_id else ""))
    for run in retried:
        console.print(
            f"queued again: {run['id']}  {run['handler']} on {run['event_type']}"
            f" (task {run.get('task_id') or '-'})",
            markup=False,
        )
    if problems:
        fail(f"{len(problems)} run(s) not retried", code=1, details=problems)


async def _list_page(url: str | None, params: dict[str, Any]) -> dict[str, Any]:
    async with open_client(url) as api:
        return await _get_page(api, params)


async def _get_page(api: OmnihookClient, params: dict[str, Any]) -> dict[str, Any]:
    query = {key: str(value) for key, value in params.items() if value is not None}
    # The client's own request path: its error handling and the test transport seam.
    response = await api._request("GET", "/v1/handler-runs", params=query)
    return cast(dict[str, Any], response.json())


async def _retry(
    url: str | None, run_ids: list[str], task_id: str | None, failed: bool
) -> tuple[list[ListedRun], list[str]]:
    retried: list[ListedRun] = []
    problems: list[str] = []
    async with open_client(url) as api:
        if failed:
            run_ids = await _failed_run_ids(api, task_id)
        for run_id in run_ids:
            try:
                response = await api._request(
                    "POST", f"/v1/handler-runs/{quote(run_id, safe='')}/retry"
                )
            except ApiError as exc:  # this run only; the others are still worth retrying
                problems.append(f"{run_id}: {exc}")
                continue
            retried.append(cast(ListedRun, response.json()))
    return retried, problems


async def _failed_run_ids(api: OmnihookClient, task_id: str | None) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"status": "failed", "task": task_id, "limit": 200, "cursor": cursor}
        page = await _get_page(api, params)
        ids.extend(run["id"] for run in page["handler_runs"])
        cursor = page.get("next_cursor")
        if not cursor:
            return ids
