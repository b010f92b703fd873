"""The omnihook processes of a chaos scenario, by role, which can be killed and started again.

Built on the end-to-end tests' :class:`~tests.e2e.replica_cluster.Cluster` (which starts real
``serve``/``worker`` subprocesses and keeps their logs); this adds what a chaos monkey needs:
the command each role was started with (to start it again after a SIGKILL) and which role holds
a given loopback connection (to kill the process that is in the middle of a transfer).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.replica_cluster import Cluster, Process

STOP_GRACE = 5.0  # seconds a process has to stop after SIGTERM at the end, before SIGKILL


@dataclass
class Role:
    name: str
    args: tuple[str, ...]
    url: str | None  # where a serve process answers; None for a worker
    runs_jobs: bool  # a worker, or serve with its in-process worker


@dataclass
class Fleet:
    env: Mapping[str, str]
    workdir: Path
    cluster: Cluster = field(init=False)
    roles: dict[str, Role] = field(default_factory=dict)
    current: dict[str, Process] = field(default_factory=dict)
    kills: Counter[str] = field(default_factory=Counter)  # role -> SIGKILLs

    def __post_init__(self) -> None:
        self.cluster = Cluster(self.env, self.workdir)

    def serve(self, name: str, port: int, *, with_worker: bool = True) -> Role:
        args = ("serve", "--port", str(port), *(() if with_worker else ("--no-worker",)))
        return self._add(Role(name, args, f"http://127.0.0.1:{port}", with_worker))

    def worker(self, name: str) -> Role:
        return self._add(Role(name, ("worker",), None, True))

    def _add(self, role: Role) -> Role:
        self.roles[role.name] = role
        self.start(role.name)
        return role

    def start(self, name: str) -> Process:
        process = self.cluster.start(name, *self.roles[name].args)
        self.current[name] = process
        return process

    def alive(self, name: str) -> bool:
        return self.current[name].alive()

    def kill(self, name: str) -> None:
        self.cluster.kill(self.current[name])
        self.kills[name] += 1

    def restart_dead(self) -> list[str]:
        dead = [name for name in self.roles if not self.alive(name)]
        for name in dead:
            self.start(name)
        return dead

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every serve process answers ``/readyz`` 200 (workers have no HTTP side)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
            for role in self.roles.values():
                while role.url is not None:
                    assert self.alive(role.name), self.current[role.name].tail()
                    try:
                        if (await client.get(f"{role.url}/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if loop.time() > deadline:
                        raise AssertionError(f"{role.name} never became ready\n{self.report()}")
                    await asyncio.sleep(0.1)

    def holder_of(self, client_ports: set[int], server_port: int) -> list[str]:
        """The roles whose process has a connection from one of ``client_ports`` to
        ``server_port`` on loopback (found through /proc: socket inodes of the process's
        descriptors, and /proc/net/tcp for the ports of each socket)."""
        inodes = _loopback_sockets(client_ports, server_port)
        if not inodes:
            return []
        holders = []
        for name, process in self.current.items():
            if process.alive() and _owns_any(process.pid, inodes):
                holders.append(name)
        return holders

    def stop(self) -> None:
        for process in self.cluster.processes:
            if process.alive():
                process.popen.send_signal(signal.SIGTERM)
        for process in self.cluster.processes:
            try:
                process.popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(10)

    def report(self, lines: int = 40) -> str:
        return "\n".join(p.tail(lines) for p in self.current.values())


def _loopback_sockets(client_ports: set[int], server_port: int) -> set[str]:
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            parts = row.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if int(local.rsplit(":", 1)[1], 16) in client_ports and (
                int(remote.rsplit(":", 1)[1], 16) == server_port
            ):
                found.add(f"socket:[{inode}]")
    return found


def _owns_any(pid: int, inodes: set[str]) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    try:
        for fd in fds.iterdir():
            try:
                if os.readlink(fd) in inodes:
                    return True
            except OSError:
                continue
    except OSError:
        return False
    return False
