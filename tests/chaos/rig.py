"""One chaos scenario's installation: omnihook processes, the simulated provider, proxies that
inject faults, webhook sinks, and a client that submits tasks through whatever is up.

Traffic paths (every one on loopback)::

    test client        -> front proxy     (no faults) -> serve processes, in turn
    provider callbacks -> callbacks proxy (no faults) -> serve processes, in turn
    omnihook -> provider proxy -> simulated provider's API
    omnihook -> media proxy    -> the simulated provider's videos ("CDN")
    omnihook -> sink proxy     -> healthy webhook sink
    omnihook -> hung endpoints (accept, never answer), when the scenario has some
"""

from __future__ import annotations

import asyncio
import random
import textwrap
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.fake_kling.simulator import Simulator
from service.loopback import serve_on_loopback
from tests.chaos.fault_proxy import FaultMix, FaultProxy
from tests.chaos.fleet import Fleet
from tests.chaos.peers import HealthySink, HungEndpoint, MediaThrough
from tests.chaos.report import ScenarioReport
from tests.e2e.conftest import free_port
from tests.e2e.replica_cluster import cluster_env

# The healthy handler every scenario checks: it records each run's start and end per process,
# and takes a moment, so that a kill can land inside a run. The others hang or block once.
PLUGIN = textwrap.dedent(
    """
    import asyncio, os, time
    from handlers import on

    LOG = os.path.join(os.environ["CHAOS_HANDLER_LOGS"], f"{os.getpid()}.log")
    BLOCK_SECONDS = float(os.environ["CHAOS_BLOCK_SECONDS"])

    def note(word, event):
        with open(LOG, "a") as f:
            f.write(f"{word} {event.id} {time.time()}\\n")

    @on("*")
    async def record(event):
        note("start", event)
        await asyncio.sleep(0.3)
        note("done", event)

    # the first run of each of these hangs, for the tasks whose metadata asks for it; the
    # runs after a timeout return at once
    @on("task.succeeded")
    def stuck(event):
        if event.data["task"]["metadata"].get("hang") and event.attempt == 1:
            time.sleep(3600)  # a sync handler that never returns

    @on("task.processing")
    async def blocking(event):
        if event.data["task"]["metadata"].get("hang") and event.attempt == 1:
            # an async handler that blocks its event loop, for longer than the provider
            # waits for a callback's answer
            time.sleep(BLOCK_SECONDS)
    """
)
HEALTHY_HANDLER = ":record"
CALLBACK_TIMEOUT = 10.0  # how long the simulated provider waits for a callback's answer

# short schedules and leases: a scenario settles in seconds, not in the production day
SETTINGS = {
    "kling_api_key": "chaos-key",
    "allow_private_networks": "true",
    "job_lease_seconds": "3",
    "reconcile_after": "3",
    "submit_resume_after": "8",  # the simulator answers a create at once
    "handler_timeout": "3",
    "webhook_timeout": "5",
    "handler_retry_schedule": "0.3,0.6,1,1,2,2,3,3",
    "download_retry_schedule": "0.3,0.6,1,1,2,2,3,3",
    "webhook_retry_schedule": "0.3,0.6,1,1,2,2,3,3,3,3",
}


@dataclass
class Layout:
    """What a scenario runs: serve processes (with their in-process worker or not), separate
    workers, hung webhook endpoints, fault mixes per proxy and extra settings."""

    serve: list[bool] = field(default_factory=lambda: [True])  # with_worker, per process
    workers: int = 0
    hung_endpoints: int = 0
    provider: FaultMix = field(default_factory=FaultMix)
    media: FaultMix = field(default_factory=FaultMix)
    sink: FaultMix = field(default_factory=FaultMix)
    settings: dict[str, str] = field(default_factory=dict)
    step_seconds: float = 0.3


@dataclass
class Rig:
    report: ScenarioReport
    rng: random.Random
    fleet: Fleet
    front: FaultProxy
    callbacks: FaultProxy
    proxies: dict[str, FaultProxy]  # provider, media, sink: the ones that inject faults
    simulator: Simulator
    fake_url: str
    sink: HealthySink
    hung: list[HungEndpoint]
    api: httpx.AsyncClient
    media_dir: Path
    handler_logs: Path
    endpoint_id: str = ""
    external_ids: list[str] = field(default_factory=list)

    def faults(self, on: bool) -> None:
        for proxy in self.proxies.values():
            proxy.faults_on = on

    def count_faults(self) -> None:
        for name, proxy in self.proxies.items():
            for kind, count in proxy.injected.items():
                self.report.faults[f"{name} {kind}"] = count

    async def call(
        self, method: str, path: str, *, patience: float = 30.0, **kwargs: Any
    ) -> httpx.Response:
        """An API call through the front proxy, tried again while no serve process can answer
        (connection refused or reset, 502/503) until ``patience`` runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            try:
                answer = await self.api.request(method, path, **kwargs)
                if answer.status_code not in (500, 502, 503) or loop.time() > deadline:
                    return answer
            except httpx.TransportError:
                if loop.time() > deadline:
                    raise
            await asyncio.sleep(0.2)

    async def submit(self, n: int, *, hang: bool = False, videos: int = 1) -> None:
        """Submit task ``n``; a retry after a lost answer finds it already there (409)."""
        external_id = f"{self.report.scenario}-{n}"
        prompt = f"chaos {n}" + (" [sim:duplicate]" if n % 3 == 0 else "")
        if videos > 1:
            prompt += f" [sim:videos={videos}]"
        body = {
            "model_name": "kling-v3-omni",
            "duration": "5",
            "aspect_ratio": "16:9",
            "prompt": prompt,
            "external_task_id": external_id,
            "metadata": {"hang": hang},
        }
        answer = await self.call("POST", "/v1/tasks", json=body)
        assert answer.status_code in (201, 409), answer.text
        self.external_ids.append(external_id)

    async def submit_over(self, count: int, seconds: float, hang_every: int = 0) -> None:
        """``count`` tasks spread over ``seconds``, a few at once."""
        pending = []
        for n in range(count):
            hang = bool(hang_every) and n % hang_every == 0
            pending.append(asyncio.create_task(self.submit(n, hang=hang, videos=1 + n % 2)))
            await asyncio.sleep(seconds / count)
        await asyncio.gather(*pending)


@asynccontextmanager
async def chaos_rig(
    report: ScenarioReport, workdir: Path, database_url: str, layout: Layout
) -> AsyncIterator[Rig]:
    rng = random.Random(report.seed)
    media_dir = (workdir / "media").resolve()
    handler_logs = workdir / "handler-runs"
    handler_logs.mkdir()
    plugin = workdir / "chaos_plugin.py"
    plugin.write_text(PLUGIN)
    serve_ports = [free_port() for _ in layout.serve]
    async with AsyncExitStack() as stack:
        serve_addresses = [("127.0.0.1", port) for port in serve_ports]
        front = FaultProxy("front", list(serve_addresses), rng)
        callbacks = FaultProxy("callbacks", list(serve_addresses), rng)
        media = FaultProxy("media", [], rng, layout.media)
        provider = FaultProxy("provider", [], rng, layout.provider)
        sink_proxy = FaultProxy("sink", [], rng, layout.sink)
        for proxy in (front, callbacks, media, provider, sink_proxy):
            await stack.enter_async_context(proxy)
        # a generous callback timeout: a busy machine may take a while to answer
        config = FakeKlingConfig(
            step_seconds=layout.step_seconds, callback_timeout=CALLBACK_TIMEOUT
        )
        fake_app = create_fake_kling_app(config)
        simulator: Simulator = fake_app.state.fake_kling
        fake_url = await stack.enter_async_context(
            serve_on_loopback(MediaThrough(fake_app, f"127.0.0.1:{media.port}"))
        )
        fake_address = ("127.0.0.1", _port_of(fake_url))
        media.upstreams.append(fake_address)
        provider.upstreams.append(fake_address)
        sink = HealthySink()
        sink_url = await stack.enter_async_context(serve_on_loopback(sink.app()))
        sink_proxy.upstreams.append(("127.0.0.1", _port_of(sink_url)))
        hung = [HungEndpoint() for _ in range(layout.hung_endpoints)]
        hung_urls = [await stack.enter_async_context(endpoint) for endpoint in hung]

        env = cluster_env(
            database_url=database_url,
            media_dir=str(media_dir),
            public_url=callbacks.url,
            kling_base_url=provider.url,
            handlers=str(plugin),
            **{**SETTINGS, **layout.settings},
        )
        env["CHAOS_HANDLER_LOGS"] = str(handler_logs)
        env["CHAOS_BLOCK_SECONDS"] = str(CALLBACK_TIMEOUT + 2)
        fleet = Fleet(env, workdir)
        stack.callback(fleet.stop)
        for n, (port, with_worker) in enumerate(zip(serve_ports, layout.serve, strict=True)):
            fleet.serve(f"serve-{n}", port, with_worker=with_worker)
        for n in range(layout.workers):
            fleet.worker(f"worker-{n}")
        await fleet.wait_ready()

        api = await stack.enter_async_context(
            httpx.AsyncClient(base_url=front.url, timeout=30, trust_env=False)
        )
        rig = Rig(
            report=report,
            rng=rng,
            fleet=fleet,
            front=front,
            callbacks=callbacks,
            proxies={"provider": provider, "media": media, "sink": sink_proxy},
            simulator=simulator,
            fake_url=fake_url,
            sink=sink,
            hung=hung,
            api=api,
            media_dir=media_dir,
            handler_logs=handler_logs,
        )
        rig.endpoint_id, sink.secret = await _register(rig, f"{sink_proxy.url}/hook")
        for url in hung_urls:
            await _register(rig, url)
        yield rig


async def _register(rig: Rig, url: str) -> tuple[str, str]:
    answer = await rig.call("POST", "/v1/webhooks", json={"url": url, "events": ["*"]})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    return str(created["id"]), str(created["secret"])


def _port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port
