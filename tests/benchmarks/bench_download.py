"""Benchmark: the downloader against ``curl`` on the same 200 MB file from a loopback server.

    python -m tests.benchmarks.bench_download [--size-mb 200] [--rounds 5] [--cdn-rate-mb 100]

A server process (raw asyncio, honest ``Range``/``ETag``) serves one file on 127.0.0.1 twice:
at full speed (``sendfile``: the loopback's ceiling, where only the clients' CPU counts) and
paced like a fast CDN connection (``--cdn-rate-mb`` MiB/s). Each round fetches it with
``curl -o`` and with :func:`download_video` (in a fresh subprocess, through the guarded
transport the worker uses, progress callback included, its client warmed by a one-byte request
as a worker's is), alternately. Reported per scenario:
the throughput of each and their ratio (target >= 0.9; the downloader also computes SHA-256
and ``fsync``s before its rename, curl does neither), CPU seconds, what SHA-256 alone costs on
this machine, and the downloading process's peak RSS growth (peak ``ru_maxrss`` after the
download minus the resident size before it; target < 64 MiB whatever the file size).
Stops by itself; only loopback traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1024 * 1024


def make_file(path: Path, size: int) -> str:
    """An MP4 (the packaged sample) padded with a ``free`` box to ``size`` bytes; its sha256."""
    from service.fake_kling.media import load_sample

    sample = load_sample()
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    with path.open("wb") as file:
        head = sample + (size - len(sample)).to_bytes(4, "big") + b"free"
        file.write(head)
        digest.update(head)
        remaining = size - len(head)
        while remaining > 0:
            piece = block[: min(MiB, remaining)]
            file.write(piece)
            digest.update(piece)
            remaining -= len(piece)
    return digest.hexdigest()


# -- the server process --------------------------------------------------------------------------


async def serve(path: Path, rate_mb: float) -> None:
    from tests.downloads.hostile import HostileServer

    async with HostileServer() as server:
        print(server.add("/full-speed.mp4", path), flush=True)
        print(server.add("/cdn-rate.mp4", path, rate=rate_mb * MiB), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed


# -- the downloading process ---------------------------------------------------------------------


def current_rss_kib() -> int:
    """The process's resident size now (not its peak so far, which the imports may have set)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # an upper bound elsewhere
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


async def fetch(url: str, media: Path) -> dict[str, float | int | str]:
    import httpx

    from service.downloads import DownloadLimits, download_video
    from service.egress import GuardedTransport

    limits = DownloadLimits(max_bytes=4 * 1024 * MiB, deadline=600, allow_private=True)

    async def progress(received: int, total: int | None) -> None:
        return None

    transport = GuardedTransport(allow_private=True)
    async with httpx.AsyncClient(transport=transport, timeout=60) as http:
        # A worker's client has made requests before this download: the HTTP stack's lazy
        # imports (anyio's event-loop backend, ~20-40 ms) are paid once per process, not per
        # download. One byte of the file, on a connection of its own (the server closes each).
        warm_up = await http.get(url, headers={"Range": "bytes=0-0"})
        assert warm_up.status_code == 206
        before = current_rss_kib()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        result = await download_video(
            http, url, media_dir=media, name="bench/0", limits=limits, on_progress=progress
        )
        seconds = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        after = cpu_after.ru_maxrss
    return {
        "seconds": seconds,
        "cpu": cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime,
        "size": result.size,
        "sha256": result.sha256,
        "rss_before_kib": before,
        "rss_peak_kib": after,
    }


# -- the benchmark -------------------------------------------------------------------------------


def run_curl(curl: str, url: str, out: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds of ``curl -o``."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([curl, "-s", "-f", "-o", str(out), url], check=True)
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.unlink()
    cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    return seconds, cpu


def sha256_seconds(path: Path) -> float:
    """What hashing the file alone costs on this machine (curl does not hash; we must)."""
    digest = hashlib.sha256()
    started = time.perf_counter()
    with path.open("rb") as file:
        while block := file.read(MiB):
            digest.update(block)
    return time.perf_counter() - started


def run_ours(url: str, media: Path) -> dict[str, float | int | str]:
    shutil.rmtree(media, ignore_errors=True)
    answer = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_download", "--fetch", url, str(media)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float | int | str] = json.loads(answer.stdout)
    shutil.rmtree(media, ignore_errors=True)
    return result


def main(size_mb: int, rounds: int, rate_mb: float) -> int:
    curl = shutil.which("curl")
    if curl is None:
        print("curl is needed as the baseline (apt-get install curl)", file=sys.stderr)
        return 2
    size = size_mb * MiB
    with tempfile.TemporaryDirectory(prefix="bench-download-") as directory:
        root = Path(directory)
        source = root / "big.mp4"
        expected = make_file(source, size)
        os.sync()  # no writeback of the source competing with the measured downloads
        command = [sys.executable, "-m", "tests.benchmarks.bench_download"]
        server = subprocess.Popen(
            [*command, "--serve", str(source), "--cdn-rate-mb", str(rate_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            full_speed, cdn_rate = (
                server.stdout.readline().strip(),
                server.stdout.readline().strip(),
            )
            run_curl(curl, full_speed, root / "warm-up")  # page cache warm for both
            print(f"file: {size // MiB} MiB, {os.cpu_count()} CPUs", flush=True)
            print(f"SHA-256 of the file alone: {size / MiB / sha256_seconds(source):.0f} MiB/s")
            scenarios = [
                ("loopback at full speed", full_speed, rounds),
                (f"paced at {rate_mb:g} MiB/s, like a fast CDN", cdn_rate, max(2, rounds // 2)),
            ]
            for title, url, count in scenarios:
                curl_runs: list[tuple[float, float]] = []
                our_runs: list[tuple[float, float]] = []
                growth: list[float] = []
                for _ in range(count):
                    curl_runs.append(run_curl(curl, url, root / "curl.out"))
                    ours = run_ours(url, root / "media")
                    if ours["sha256"] != expected or ours["size"] != size:
                        print(f"WRONG RESULT: {ours}", file=sys.stderr)
                        return 1
                    our_runs.append((float(ours["seconds"]), float(ours["cpu"])))
                    growth.append((int(ours["rss_peak_kib"]) - int(ours["rss_before_kib"])) / 1024)
                report(title, size, curl_runs, our_runs, growth)
        finally:
            if server.stdin is not None:
                server.stdin.close()
            server.wait(10)
    return 0


def report(
    title: str,
    size: int,
    curl_runs: list[tuple[float, float]],
    our_runs: list[tuple[float, float]],
    growth: list[float],
) -> None:
    def speeds(runs: list[tuple[float, float]]) -> str:
        times = [seconds for seconds, cpu in runs]
        best, median = size / MiB / min(times), size / MiB / statistics.median(times)
        cpu = statistics.median(cpu for seconds, cpu in runs)
        return f"best {best:7.1f} MiB/s, median {median:7.1f} MiB/s, CPU {cpu:.2f} s"

    curl_times = [seconds for seconds, cpu in curl_runs]
    our_times = [seconds for seconds, cpu in our_runs]
    best_ratio = min(curl_times) / min(our_times)
    median_ratio = statistics.median(curl_times) / statistics.median(our_times)
    print(f"\n{title} ({len(curl_runs)} rounds)")
    print(f"  curl -o:    {speeds(curl_runs)}")
    print(f"  downloader: {speeds(our_runs)} (SHA-256 and fsync included)")
    print(
        f"  throughput ratio (downloader / curl): best {best_ratio:.2f}, "
        f"median {median_ratio:.2f} (target >= 0.9)"
    )
    print(f"  peak RSS growth while downloading: max {max(growth):.1f} MiB (target < 64 MiB)")
    sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cdn-rate-mb", type=float, default=100.0)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fetch", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.cdn_rate_mb))
    elif args.fetch:
        print(json.dumps(asyncio.run(fetch(args.fetch[0], Path(args.fetch[1])))))
    else:
        sys.exit(main(args.size_mb, args.rounds, args.cdn_rate_mb))
