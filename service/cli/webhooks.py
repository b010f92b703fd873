"""``omnihook webhooks``: outgoing webhook endpoints and their deliveries, over the HTTP API.

    omnihook webhooks add URL [--events a,b] [--description TEXT]   prints the secret, once
    omnihook webhooks list | show ID | deliveries ID [--status] [--limit]
    omnihook webhooks retry DELIVERY_ID...                           same webhook-id
    omnihook webhooks enable|disable|rotate|remove ID

Like ``omnihook tasks``, these talk to a running service (``--url``, ``OMNIHOOK_URL``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast
from urllib.parse import quote

import click
import httpx
from rich.table import Table

from .client import ApiError, ServiceUnreachable, _api_error
from .common import fail, open_client, report_errors, url_option
from .progress import COMPACT, make_console, short_time, styled_status

OUTPUT = click.option(
    "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)


def _segment(value: str) -> str:
    return quote(value, safe="")


async def _call(url: str | None, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    async with open_client(url) as api:
        # The client's own request path: its error handling and the test transport seam.
        response = await api._request(method, path, **kwargs)
        return cast(dict[str, Any], response.json())


def _run(url: str | None, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    return report_errors(lambda: asyncio.run(_call(url, method, path, **kwargs)))


def _events(values: tuple[str, ...]) -> list[str]:
    found = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return found or ["*"]


@click.group()
def webhooks() -> None:
    """Outgoing webhook endpoints: Standard Webhooks deliveries of every event they want."""


@webhooks.command()
@click.argument("endpoint_url", metavar="URL")
@click.option(
    "--events",
    "events",
    multiple=True,
    metavar="TYPES",
    help="Event types, comma-separated or repeated (default: * for every event).",
)
@click.option("--description", default="", help="What the endpoint is for.")
@url_option
@OUTPUT
def add(
    endpoint_url: str, events: tuple[str, ...], description: str, url: str | None, output: str
) -> None:
    """Register an endpoint; prints its signing secret (shown this once)."""
    body = {"url": endpoint_url, "events": _events(events), "description": description}
    created = _run(url, "POST", "/v1/webhooks", json=body)
    console = make_console()
    if output == "json":
        console.print_json(json.dumps(created))
        return
    events_shown = ", ".join(created["events"])
    console.print(f"added {created['id']}  {created['url']}  ({events_shown})", markup=False)
    console.print(f"secret: {created['secret']}", markup=False)
    console.print("keep it: it is not shown again (rotate it with `omnihook webhooks rotate`)")


@webhooks.command(name="list")
@url_option
@OUTPUT
def list_endpoints(url: str | None, output: str) -> None:
    """List the endpoints."""
    found = _run(url, "GET", "/v1/webhooks")["webhooks"]
    console = make_console()
    if output == "json":
        console.print_json(json.dumps(found))
        return
    if not found:
        console.print("no webhook endpoints")
        return
    table = Table(**COMPACT)
    table.add_column("id", no_wrap=True)
    for column in ("url", "events", "state", "failing since", "description"):
        table.add_column(column, overflow="fold")
    for item in found:
        state = "enabled" if item["enabled"] else f"disabled: {item.get('disabled_reason') or '-'}"
        table.add_row(
            item["id"],
            item["url"],
            ", ".join(item["events"]),
            state,
            short_time(item.get("failing_since")) if item.get("failing_since") else "-",
            item.get("description") or "-",
        )
    console.print(table)


@webhooks.command()
@click.argument("endpoint_id", metavar="ID")
@url_option
@OUTPUT
def show(endpoint_id: str, url: str | None, output: str) -> None:
    """One endpoint and its operator events (disabled, enabled, secret rotated)."""
    found = _run(url, "GET", f"/v1/webhooks/{_segment(endpoint_id)}")
    console = make_console()
    if output == "json":
        console.print_json(json.dumps(found))
        return
    keys = ("id", "url", "events", "enabled", "disabled_reason", "failing_since", "description")
    for key in keys:
        value = found.get(key)
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"{key}: {shown if shown not in (None, '') else '-'}", markup=False)
    for event in found.get("operator_events", []):
        console.print(
            f"  {short_time(event['timestamp'])}  {event['type']}  {event['message']}", markup=False
        )


@webhooks.command()
@click.argument("endpoint_id", metavar="ID")
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--cursor", default=None, help="Continue where the last page ended.")
@url_option
@OUTPUT
def deliveries(
    endpoint_id: str,
    status: str | None,
    limit: int,
    cursor: str | None,
    url: str | None,
    output: str,
) -> None:
    """An endpoint's deliveries, newest first, with every attempt."""
    params = {"limit": str(limit)}
    if status:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    page = _run(url, "GET", f"/v1/webhooks/{_segment(endpoint_id)}/deliveries", params=params)
    console = make_console()
    if output == "json":
        console.print_json(json.dumps(page))
        return
    if not page["deliveries"]:
        console.print("no deliveries" + (f" with status {status}" if status else ""))
    for delivery in page["deliveries"]:
        console.print(
            f"{delivery['id']}  {delivery['event_type']}  {delivery['event_id']}  "
            f"[{styled_status(delivery['status'])}]  attempts {delivery['attempts']}",
            highlight=False,
        )
        for attempt in delivery["attempt_log"]:
            code = attempt["status_code"] if attempt["status_code"] is not None else "-"
            answer = attempt["response_body"][:80].replace("\n", " ")
            cut = "…" if attempt["response_truncated"] or len(attempt["response_body"]) > 80 else ""
            console.print(
                f"    {short_time(attempt['attempted_at'])}  {code}  {attempt['duration_ms']} ms  "
                f"{attempt['error'] or 'ok'}" + (f"  «{answer}{cut}»" if answer else ""),
                markup=False,
            )
    if page.get("next_cursor"):
        console.print(f"more: add --cursor {page['next_cursor']}", markup=False)


@webhooks.command()
@click.argument("delivery_ids", nargs=-1, required=True, metavar="DELIVERY_ID...")
@url_option
def retry(delivery_ids: tuple[str, ...], url: str | None) -> None:
    """Deliver finished deliveries again (same webhook-id, schedule from the start)."""

    async def run() -> tuple[list[dict[str, Any]], list[str]]:
        done: list[dict[str, Any]] = []
        problems: list[str] = []
        async with open_client(url) as api:
            for delivery_id in delivery_ids:
                try:
                    response = await api._request(
                        "POST", f"/v1/deliveries/{_segment(delivery_id)}/retry"
                    )
                except ApiError as exc:  # this one only; the others are still worth retrying
                    problems.append(f"{delivery_id}: {exc}")
                    continue
                done.append(cast(dict[str, Any], response.json()))
        return done, problems

    done, problems = report_errors(lambda: asyncio.run(run()))
    console = make_console()
    for delivery in done:
        console.print(
            f"queued again: {delivery['id']}  {delivery['event_type']} {delivery['event_id']} "
            f"→ {delivery['endpoint_id']}",
            markup=False,
        )
    if problems:
        fail(f"{len(problems)} delivery(ies) not retried", code=1, details=problems)


def _patch(endpoint_id: str, url: str | None, body: dict[str, Any]) -> dict[str, Any]:
    return _run(url, "PATCH", f"/v1/webhooks/{_segment(endpoint_id)}", json=body)


@webhooks.command()
@click.argument("endpoint_id", metavar="ID")
@url_option
def enable(endpoint_id: str, url: str | None) -> None:
    """Enable an endpoint again (its failing spell starts over)."""
    _patch(endpoint_id, url, {"enabled": True})
    make_console().print(f"enabled {endpoint_id}", markup=False)


@webhooks.command()
@click.argument("endpoint_id", metavar="ID")
@url_option
def disable(endpoint_id: str, url: str | None) -> None:
    """Disable an endpoint: no new deliveries; pending ones fail (retry them later)."""
    _patch(endpoint_id, url, {"enabled": False})
    make_console().print(f"disabled {endpoint_id}", markup=False)


@webhooks.command()
@click.argument("endpoint_id", metavar="ID")
@url_option
def rotate(endpoint_id: str, url: str | None) -> None:
    """Replace the signing secret; prints the new one (the old one signs too for a while)."""
    changed = _patch(endpoint_id, url, {"rotate_secret": True})
    console = make_console()
    console.print(f"secret: {changed['secret']}", markup=False)
    until = changed.get("previous_secret_expires_at")
    if until:
        console.print(f"the previous secret signs too until {until}", markup=False)
    else:
        console.print("the previous secret no longer signs", markup=False)


@webhooks.command()
@click.argument("endpoint_id", metavar="ID")
@url_option
def remove(endpoint_id: str, url: str | None) -> None:
    """Remove an endpoint and its deliveries."""
    report_errors(lambda: asyncio.run(_delete(url, endpoint_id)))
    make_console().print(f"removed {endpoint_id}", markup=False)


async def _delete(url: str | None, endpoint_id: str) -> None:
    async with open_client(url) as api:
        # 204 has no JSON body, which the client's _request refuses: checked here instead
        try:
            response = await api._http.request("DELETE", f"/v1/webhooks/{_segment(endpoint_id)}")
        except httpx.TransportError as exc:
            raise ServiceUnreachable(api.base_url, str(exc) or type(exc).__name__) from exc
        if response.is_error:
            raise _api_error(response)
