"""Benchmark: notifications per second acknowledged by one ``omnihook serve`` process.

    python -m tests.benchmarks.bench_receiver [--seconds 10] [--rounds 2] [--connections 32]

In a temporary directory, tasks are stored in a fresh SQLite database with known callback
tokens; then ``omnihook serve`` (API and in-process worker, as deployed) answers a stream of
valid, matched notifications (``processing``, the official shape) spread over those tasks, at
32 concurrent keep-alive connections. The baseline, in the same run and with the same uvicorn
settings, is a bare Starlette endpoint on the same path that only parses the same JSON.
Rounds alternate between the targets: the bare endpoint, ``omnihook serve`` and ``omnihook
serve --no-worker`` (the Procfile's web process: the receiver without the in-process worker
sharing its CPU and database connection). Every omnihook run starts from the same database
(the tasks, no notification), so no run inherits another's backlog. Reported per round:
acknowledged (200) notifications per second, p50/p99 latency and the server's CPU time per
request (less sensitive than rates to other load on the machine); then each omnihook target's
median rate as a ratio of the bare one (target >= 0.5) and its p99 (target < 25 ms), and its
ratio to the bare endpoint within each round (measured minutes apart at most). Every 200
must be a stored notification: the database is counted after each run. ``omnihook serve``
gives its receiver priority over its in-process worker during a burst
(:mod:`service.receiver.load`), so after its load the run also waits until the worker has
applied every stored notification, and reports how long that took: nothing is left undone.

Load comes from ``wrk`` when installed (``apt-get install wrk``), else from an asyncio
generator of raw HTTP/1.1 requests (slower: it shares the CPU with the servers). Stops by
itself; only loopback traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TASKS = 500
HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    target: str
    acknowledged: int  # answered 200
    failed: int  # any other answer, or a socket error
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float = 0.0  # of the server process, while measured
    stored: int = 0  # notifications the database gained during the run (warm-up included)
    applied_after: float | None = None  # seconds after the load until all were applied

    @property
    def rate(self) -> float:
        return self.acknowledged / self.seconds

    @property
    def cpu_per_request_us(self) -> float:
        return 1e6 * self.cpu_seconds / max(self.acknowledged, 1)


# -- the baseline: a bare endpoint ---------------------------------------------------------------


def serve_bare(port: int) -> None:
    """The same path, the same JSON parsing, nothing else; uvicorn as ``omnihook serve`` runs it."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def receive(request: Request) -> Response:
        json.loads(await request.body())
        return JSONResponse({"received": True})

    app = Starlette(routes=[Route("/callbacks/kling/{token}", receive, methods=["POST"])])
    uvicorn.run(app, host=HOST, port=port, proxy_headers=True, log_level="info")


# -- setting up ----------------------------------------------------------------------------------


async def store_tasks(database: Path, count: int) -> list[tuple[str, bytes]]:
    """``count`` submitted tasks; answers (token, notification body) pairs that match them."""
    from service.receiver.verify import token_hash
    from storage.records import TaskStatus
    from storage.sqlite.backend import SQLiteStorage
    from tests.factories import make_task

    storage = SQLiteStorage(str(database))
    await storage.open()
    pairs = []
    # Submitted just now, as the tasks of a real burst are: older ones would be "quiet", and
    # the worker would spend the run querying the provider (which is not there) about them.
    now = datetime.now(UTC)
    try:
        for n in range(count):
            token = secrets.token_urlsafe(32)
            task = make_task(
                callback_token_hash=token_hash(token),
                created_at=now,
                updated_at=now,
                status=TaskStatus.SUBMITTED,
                provider_task_id=f"8716049884086{n:05d}",
                external_task_id=f"bench-{n}",
            )
            await storage.create_task(task)
            body = {
                "task_id": task.provider_task_id,
                "task_status": "processing",
                "task_status_msg": "",
                "created_at": 1775835341656,
                "updated_at": 1775835351656,
                "task_info": {"external_task_id": task.external_task_id},
            }
            pairs.append((token, json.dumps(body).encode()))
    finally:
        await storage.close()
    return pairs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start(target: str, home: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if target.startswith("omnihook"):
        command = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
        command += ["--port", str(port), *target.split()[1:]]
    else:
        command = [sys.executable, "-m", "tests.benchmarks.bench_receiver", "--bare", str(port)]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OMNIHOOK_")},
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMNIHOOK_DATABASE_URL": f"sqlite:///{home / 'omnihook.db'}",
        "OMNIHOOK_MEDIA_DIR": str(home / "media"),
        "OMNIHOOK_KLING_API_KEY": "bench",
        "OMNIHOOK_KLING_BASE_URL": "http://127.0.0.1:9",  # never called: no final states
        "OMNIHOOK_RECONCILE_AFTER": "86400",
    }
    log = (home / f"{target.split()[0]}.log").open("ab")
    server = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"{target} exited at start; see {home}/*.log")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"{target} did not start listening within 30 s")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# -- load: wrk -----------------------------------------------------------------------------------

WRK_SCRIPT = """
local pairs = {%s}
local n = 0
request = function()
  n = n + 1
  local pair = pairs[(n %% #pairs) + 1]
  return wrk.format("POST", "/callbacks/kling/" .. pair[1],
                    {["Content-Type"] = "application/json"}, pair[2])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\\nRESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"non2xx\\": %%d, " ..
    "\\"socket_errors\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d}\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def load_wrk(
    target: str, port: int, pairs: list[tuple[str, bytes]], connections: int, seconds: float
) -> Run:
    entries = ",".join(f"{{[==[{token}]==], [==[{body.decode()}]==]}}" for token, body in pairs)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % entries)
    try:
        threads = str(min(2, os.cpu_count() or 1))
        command = ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds:g}s"]
        command += ["-s", script.name, f"http://{HOST}:{port}/"]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    result = json.loads(output.split("RESULT ", 1)[1])
    failed = result["non2xx"] + result["socket_errors"]
    return Run(
        target,
        acknowledged=result["requests"] - result["non2xx"],
        failed=failed,
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
    )


# -- load: the asyncio fallback ------------------------------------------------------------------


async def _connection(
    port: int, requests: list[bytes], stop_at: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(HOST, port)
    failed, n = 0, 0
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(requests[n % len(requests)])
            n += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200"):
                latencies.append(time.perf_counter() - started)
            else:
                failed += 1
    finally:
        writer.close()
    return failed


async def _load_python(
    port: int, pairs: list[tuple[str, bytes]], connections: int, seconds: float
) -> tuple[list[float], int, float]:
    requests = [
        f"POST /callbacks/kling/{token} HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
        for token, body in pairs
    ]
    latencies: list[float] = []
    begun = time.perf_counter()
    stop_at = begun + seconds
    failures = await asyncio.gather(
        *(
            _connection(port, requests[i::connections], stop_at, latencies)
            for i in range(connections)
        )
    )
    return latencies, sum(failures), time.perf_counter() - begun


def load_python(
    target: str, port: int, pairs: list[tuple[str, bytes]], connections: int, seconds: float
) -> Run:
    latencies, failed, elapsed = asyncio.run(_load_python(port, pairs, connections, seconds))
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Run(target, len(latencies), failed, elapsed, cuts[49] * 1000, cuts[98] * 1000)


# -- the run -------------------------------------------------------------------------------------

TARGETS = ("bare", "omnihook", "omnihook --no-worker")


def stored_notifications(database: Path) -> int:
    # closed at once (``with sqlite3.connect`` alone does not close): the next run replaces
    # the database file, which a connection left open would still hold locks on
    with contextlib.closing(sqlite3.connect(database)) as conn:
        count: int = conn.execute("SELECT count(*) FROM notifications").fetchone()[0]
        return count


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def unapplied_notifications(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        count: int = conn.execute(
            "SELECT count(*) FROM notifications WHERE outcome IS NULL"
        ).fetchone()[0]
        return count


def wait_until_applied(database: Path, limit: float) -> float | None:
    """Seconds until every stored notification has been applied (None: not within ``limit``)."""
    began = time.monotonic()
    while unapplied_notifications(database):
        if time.monotonic() - began > limit:
            return None
        time.sleep(0.1)
    return time.monotonic() - began


def measure(
    target: str, home: Path, args: argparse.Namespace, pairs: list[tuple[str, bytes]]
) -> Run:
    database = home / "omnihook.db"
    for suffix in ("-wal", "-shm"):
        (home / f"omnihook.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(home / "tasks.db", database)  # the same start for every run
    server, port = start(target, home)
    try:
        load = load_wrk if args.generator == "wrk" else load_python
        load(target, port, pairs, args.connections, 1.0)  # warm-up: imports, caches, pages
        before = cpu_seconds(server.pid)
        run = load(target, port, pairs, args.connections, args.seconds)
        run.cpu_seconds = cpu_seconds(server.pid) - before
        if target == "omnihook":
            run.applied_after = wait_until_applied(database, limit=300)
        return run
    finally:
        stop(server)


def main(args: argparse.Namespace) -> int:
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as tmp:
        home = Path(tmp)
        pairs = asyncio.run(store_tasks(home / "tasks.db", args.tasks))
        runs: dict[str, list[Run]] = {target: [] for target in TARGETS}
        for _ in range(args.rounds):
            for target in TARGETS:
                run = measure(target, home, args, pairs)
                runs[target].append(run)
                if target != "bare":
                    run.stored = stored_notifications(home / "omnihook.db")
        report(args, runs)
        failed = sum(r.failed for rs in runs.values() for r in rs)
        lost = [r for r in runs["omnihook"] + runs[TARGETS[2]] if r.stored < r.acknowledged]
    if lost:
        print("LOST: fewer notifications stored than acknowledged", file=sys.stderr)
    unapplied = [r for r in runs["omnihook"] if r.applied_after is None]
    if unapplied:
        print("UNAPPLIED: the worker did not apply every notification in time", file=sys.stderr)
    return 1 if failed or lost or unapplied else 0


def report(args: argparse.Namespace, runs: dict[str, list[Run]]) -> None:
    print(
        f"{args.connections} connections, {args.seconds:g} s x {args.rounds} rounds per target "
        f"(alternating), load by {args.generator}, {os.cpu_count()} CPUs, {args.tasks} tasks, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for target in TARGETS:
        for run in runs[target]:
            print(
                f"  {target:21} {run.rate:7.0f}/s   p50 {run.p50_ms:6.2f} ms   "
                f"p99 {run.p99_ms:7.2f} ms   server CPU {run.cpu_per_request_us:5.0f} us/request"
                f"   failed {run.failed}"
            )
            if run.applied_after is not None:
                print(
                    f"  {'':21} all {run.stored} stored applied {run.applied_after:.1f} s after "
                    f"the load ({run.stored / (args.seconds + 1 + run.applied_after):.0f}/s "
                    "from the first callback to the last applied)"
                )
    bare = statistics.median(r.rate for r in runs["bare"])
    for target in TARGETS[1:]:
        rate = statistics.median(r.rate for r in runs[target])
        p99 = statistics.median(r.p99_ms for r in runs[target])
        print(
            f"{target}: {rate:.0f}/s = {rate / bare:.2f} of bare {bare:.0f}/s (target >= 0.5), "
            f"p99 {p99:.1f} ms (target < 25 ms)   [medians of rounds]"
        )
        # Each round runs the targets back to back: a ratio within one round is the least
        # exposed to the machine's speed drifting between rounds.
        paired = [r.rate / b.rate for r, b in zip(runs[target], runs["bare"], strict=True)]
        print(
            f"{'':{len(target)}}  ratio within each round: "
            + " ".join(f"{ratio:.2f}" for ratio in paired)
            + f" (median {statistics.median(paired):.2f})"
        )


def cli() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per round and target")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare is not None:
        serve_bare(args.bare)
        return 0
    return main(args)


if __name__ == "__main__":
    raise SystemExit(cli())
