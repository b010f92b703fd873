"""A small omnihook cluster for end-to-end tests: real ``serve``/``worker`` processes behind a
round-robin reverse proxy, on one PostgreSQL schema and one media directory.

Everything listens on loopback. The proxy stands for a platform's load balancer: it sends each
request, callbacks included, to the next replica in turn. It runs in a process of its own
(``python -m tests.e2e.replica_cluster PORT BACKEND...``), so that on a small machine the test
process, which also hosts the simulated provider, is not the bottleneck; ``GET /_proxy/stats``
(answered by the proxy itself) tells how many notifications went to each backend.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# headers that belong to one connection, not to the request (RFC 9110 §7.6.1)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
_ROOT = Path(__file__).resolve().parents[2]


class RoundRobinProxy:
    """A reverse proxy that sends each request to the next backend in turn."""

    def __init__(self, backends: list[str]) -> None:
        self._backends = itertools.cycle(backends)
        self._client: httpx.AsyncClient | None = None
        self.callbacks: Counter[str] = Counter()  # backend -> notifications forwarded to it

    def app(self) -> Starlette:
        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            # idle connections are dropped before uvicorn's keep-alive timeout (5 s) would close
            # them under a request being sent
            limits = httpx.Limits(
                max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0
            )
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                self._client = client
                yield

        routes = [
            Route("/_proxy/stats", self.stats, methods=["GET"]),
            Route("/{path:path}", self.forward, methods=_METHODS),
        ]
        return Starlette(routes=routes, lifespan=lifespan)

    async def stats(self, request: Request) -> Response:
        return JSONResponse({"callbacks": dict(self.callbacks)})

    async def forward(self, request: Request) -> Response:
        backend = next(self._backends)
        if request.url.path.startswith("/callbacks/"):
            self.callbacks[backend] += 1
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _HOP_BY_HOP
        ]
        url = httpx.URL(backend + request.url.path, query=request.url.query.encode())
        assert self._client is not None
        try:
            upstream = await self._client.request(
                request.method, url, headers=headers, content=await request.body()
            )
        except httpx.TransportError as exc:  # as a load balancer answers for a failed backend
            return Response(f"{backend}: {type(exc).__name__}", status_code=502)
        kept = {
            name: value
            for name, value in upstream.headers.items()
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-encoding"
        }
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (pid {self.pid}, exit {self.popen.poll()}) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )


@dataclass
class Cluster:
    """The processes of one installation; stop() ends them all."""

    env: Mapping[str, str]
    workdir: Path
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, *args: str, module: str = "service.cli") -> Process:
        log = self.workdir / f"{name}.log"
        env = dict(self.env)
        # the proxy's module lives in the repository, not in the installed package
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        with log.open("ab") as output:  # the child keeps its own copy of the descriptor
            popen = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=env,
                cwd=self.workdir,  # no developer's .env is read
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def kill(self, process: Process) -> None:
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait(10)

    def stop(self) -> None:
        for process in self.processes:
            if process.alive():
                process.popen.terminate()
        for process in self.processes:
            try:
                process.popen.wait(10)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(10)

    def report(self) -> str:
        return "\n".join(process.tail() for process in self.processes)


def cluster_env(**settings: str) -> dict[str, str]:
    """The environment of the cluster's processes: this one's, without any OMNIHOOK_ setting
    it may carry, plus ``settings`` (``database_url=...`` becomes OMNIHOOK_DATABASE_URL)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OMNIHOOK_")}
    env.update({f"OMNIHOOK_{key.upper()}": value for key, value in settings.items()})
    return env


def main(argv: list[str]) -> None:
    """``python -m tests.e2e.replica_cluster PORT BACKEND...``: run the proxy."""
    import uvicorn

    port, backends = int(argv[0]), argv[1:]
    app = RoundRobinProxy(backends).app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
