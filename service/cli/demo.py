"""``omnihook demo``: the whole pipeline on loopback against the simulated provider.

In a temporary directory: the simulated Kling and the service (with its worker) run in this
process on real loopback sockets; five tasks go in through the HTTP API; a live table follows
them; a summary judges each against what it should have ended as. Exit 0 only if all did.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live

from service.settings import Settings, load_settings

from .client import ClientError, OmnihookClient
from .common import fail
from .demo_cases import demo_cases
from .demo_check import Tracked, Verdict, verify
from .demo_logs import LogLine, service_logs
from .demo_plugin import seen_event_ids, write_plugin
from .demo_view import live_table, retries_note, summary_table
from .progress import make_console

DEADLINE_SECONDS = 60.0
# Startup and shutdown get this much on top of the deadline before the demo is abandoned.
GRACE_SECONDS = 15.0
POLL_SECONDS = 0.3
FAKE_STEP_SECONDS = 0.7
QUICK_RETRIES = "0.5,1,2"  # so the flaky handler's retry shows within seconds
# The simulated account's slots (tasks at once): fewer than the demo's tasks, so some queue.
DEMO_SLOTS = 3


@dataclass
class DemoOutcome:
    results: list[tuple[Tracked, Verdict]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    # Wall-clock end of the observation: later logs are shutdown noise, not causes.
    observed_until: float = field(default_factory=lambda: float("inf"))

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.problems and all(v.ok for _, v in self.results)


@click.command()
@click.option(
    "--deadline",
    default=DEADLINE_SECONDS,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds the tasks get to end as expected.",
)
@click.option("--verbose", is_flag=True, help="Show the service's own logs as they happen.")
def demo(deadline: float, verbose: bool) -> None:
    """Run the whole pipeline on loopback against the simulated provider; exit 0 if it worked."""
    console = make_console()
    try:
        _import_pipeline()
    except ImportError as exc:  # a broken install: say what is missing, not a traceback
        fail(f"the demo needs omnihook's service modules: {exc}", code=1)
    with service_logs(verbose) as logs:
        limit = deadline + GRACE_SECONDS
        try:
            outcome = asyncio.run(asyncio.wait_for(run_demo(console, deadline), limit))
        except TimeoutError:
            outcome = DemoOutcome(problems=[f"the demo did not finish within {limit:.0f} s"])
    _print_outcome(console, outcome, logs)
    raise SystemExit(0 if outcome.ok else 1)


def _import_pipeline() -> None:
    import service.app
    import service.fake_kling
    import service.loopback  # noqa: F401


async def run_demo(console: Console, deadline: float) -> DemoOutcome:
    # Imported here so the rest of the command line works even when these cannot load.
    from service.app import create_app
    from service.fake_kling import FakeKlingConfig, create_fake_kling_app
    from service.loopback import serve_on_loopback

    started = time.monotonic()
    outcome = DemoOutcome()
    run_id = secrets.token_hex(3)
    # Callbacks are signed, as a real account with a webhook secret would have them.
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    api_token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="omnihook-demo-") as tmp:
        root = Path(tmp)
        plugin = write_plugin(root)
        fake = create_fake_kling_app(
            FakeKlingConfig(
                step_seconds=FAKE_STEP_SECONDS,
                webhook_secret=webhook_secret,
                # like a real account, it runs few tasks at once (1303 beyond): the demo's
                # tasks beyond them wait in omnihook's queue (OMNIHOOK_PROVIDER_CONCURRENCY)
                max_concurrent=DEMO_SLOTS,
            )
        )
        async with serve_on_loopback(fake) as fake_url:
            port = free_loopback_port()
            settings = demo_settings(
                root,
                service_url=f"http://127.0.0.1:{port}",
                fake_url=fake_url,
                plugin=plugin,
                webhook_secret=webhook_secret,
                api_token=api_token,
            )
            console.print(f"simulated Kling at {fake_url}; omnihook at {settings.public_url}")
            service = create_app(settings, with_worker=True)
            async with (
                serve_on_loopback(service, port=port) as service_url,
                OmnihookClient(service_url, token=api_token) as api,
            ):
                tracked = [Tracked(case) for case in demo_cases(run_id)]
                try:
                    await _submit_all(api, tracked)
                    pending = await _follow(api, tracked, console, started, started + deadline)
                    if pending:
                        names = ", ".join(item.case.name for item in pending)
                        outcome.problems.append(f"not settled within {deadline:g} s: {names}")
                    outcome.observed_until = time.time()
                    outcome.results = [(item, await verify(api, item)) for item in tracked]
                except ClientError as exc:
                    outcome.problems.append(f"talking to the service failed: {exc}")
                outcome.problems.extend(_plugin_problems(root, tracked))
    outcome.elapsed = time.monotonic() - started
    return outcome


def demo_settings(
    root: Path,
    *,
    service_url: str,
    fake_url: str,
    plugin: Path,
    webhook_secret: str,
    api_token: str,
) -> Settings:
    """Every setting that matters, explicitly: the user's environment and .env must not leak in."""
    return load_settings(
        isolated=True,
        database_url=f"sqlite:///{root / 'omnihook.db'}",
        media_dir=root / "media",
        public_url=service_url,
        api_token=api_token,
        provider="kling",
        kling_base_url=fake_url,
        kling_api_key="demo-key",
        kling_webhook_secret=webhook_secret,
        provider_concurrency=str(DEMO_SLOTS),
        handlers=str(plugin),
        reconcile_after=5.0,
        webhook_retry_schedule=QUICK_RETRIES,
        handler_retry_schedule=QUICK_RETRIES,
        download_retry_schedule=QUICK_RETRIES,
        allow_private_networks=True,
        handler_timeout=10.0,
    )


def free_loopback_port() -> int:
    """A port free right now; the service binds it a moment later (the public URL needs it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _submit_all(api: OmnihookClient, tracked: list[Tracked]) -> None:
    for item in tracked:
        try:
            item.task, _ = await api.submit(item.case.request)
        except ClientError as exc:  # recorded: the summary shows which submission failed
            item.error = str(exc)


async def _follow(
    api: OmnihookClient,
    tracked: list[Tracked],
    console: Console,
    started: float,
    deadline: float,
) -> list[Tracked]:
    """Poll every task until all are settled or the deadline passes; returns the unsettled."""
    with Live(live_table(tracked, 0.0), console=console, refresh_per_second=8) as live:
        while True:
            for item in tracked:
                if item.task is not None and not item.settled():
                    item.task = await api.get_task(item.task["id"])
                    item.events = await api.task_events(item.task["id"])
            now = time.monotonic()
            live.update(live_table(tracked, now - started))
            pending = [item for item in tracked if not item.settled()]
            if not pending or now >= deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
    if not console.is_terminal:  # Live ends its last frame without a newline when piped
        console.line()
    return pending


def _plugin_problems(root: Path, tracked: list[Tracked]) -> list[str]:
    """The plugin's own record must cover every event: handlers really ran, out of process."""
    seen = seen_event_ids(root)
    missing = [event for item in tracked for event in item.events if event["id"] not in seen]
    if not missing:
        return []
    kinds = ", ".join(sorted({event["type"] for event in missing}))
    return [f"the demo plugin's '*' handler never ran for {len(missing)} event(s) ({kinds})"]


def _print_outcome(console: Console, outcome: DemoOutcome, logs: list[LogLine]) -> None:
    if outcome.results:
        console.print(summary_table(outcome.results))
        note = retries_note(outcome.results)
        if note:
            console.print(note, style="dim")
    for tracked, verdict in outcome.results:
        for problem in verdict.problems:
            console.print(f"  {tracked.case.name}: {problem}", style="red", markup=False)
    for problem in outcome.problems:
        console.print(f"  {problem}", style="red", markup=False)
    if outcome.ok:
        console.print(
            f"demo passed: {len(outcome.results)} tasks ended as expected "
            f"in {outcome.elapsed:.1f} s",
            style="bold green",
        )
        return
    relevant = [text for created, text in logs if created <= outcome.observed_until]
    if relevant:
        console.print("last warnings logged:", style="yellow")
        for text in relevant[-20:]:
            console.print(f"  {text}", markup=False)
    console.print("demo failed", style="bold red")
