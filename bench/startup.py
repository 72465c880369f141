"""Cold start to the first /healthz 200, and the idle daemon's memory.

Each case spawns a fresh process and polls /healthz until it answers 200; the figure is the
time from spawn to that answer. Cases:
  baseline    bench/_hello.py: Python + starlette + uvicorn, nothing else
  external    the daemon against an empty database on an external PostgreSQL (it migrates)
  embedded    the daemon with no DATABASE_URL and an empty DATA_DIR (initdb + start + migrate)
  restart     the daemon with no DATABASE_URL on an existing DATA_DIR (start only)
Memory is read once the process is idle: its RSS, and for the embedded server the proportional
set size (PSS) of all its processes, which counts shared memory once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.common import admin_database, drop_db, open_dir
from vodarchiver.db.embedded import free_loopback_port

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
HELLO = Path(__file__).with_name("_hello.py")


@dataclass
class Sample:
    """One start: seconds to the first 200, and memory once idle."""

    seconds: float
    rss_mb: float
    children_pss_mb: float


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment for a daemon: no inherited DATABASE_URL, no .env, quiet logs."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(LOG_LEVEL="warning", ENV_FILE=os.devnull)
    env.update(extra)
    return env


async def first_200(url: str, proc: asyncio.subprocess.Process, begin: float) -> float:
    """Seconds from `begin` until `url` answers 200 (polled every 5 ms)."""
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before answering")
            try:
                if (await client.get(url)).status_code == 200:
                    return time.perf_counter() - begin
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.005)


def memory(pid: int) -> tuple[float, float]:
    """RSS of the process and PSS of its children (the embedded server), in MB."""
    proc = psutil.Process(pid)
    rss = proc.memory_info().rss / 2**20
    pss = 0.0
    for child in proc.children(recursive=True):
        try:
            pss += child.memory_full_info().pss / 2**20
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return rss, pss


async def start_once(
    argv: Sequence[str], env: dict[str, str], port: int, cwd: Path | None = None
) -> Sample:
    """Spawn, time the first 200, let it idle, read its memory, SIGTERM it."""
    begin = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        seconds = await asyncio.wait_for(
            first_200(f"http://127.0.0.1:{port}/healthz", proc, begin), 60
        )
        await asyncio.sleep(1.0)  # idle: let start-up garbage settle before reading memory
        rss, pss = memory(proc.pid)
    except BaseException:
        proc.kill()
        err = await proc.stderr.read() if proc.stderr else b""
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)
        raise
    proc.send_signal(signal.SIGTERM)
    await proc.wait()
    return Sample(seconds, rss, pss)


async def run_cases(admin_url: str) -> dict[str, list[Sample]]:
    """Every case RUNS times, interleaved so machine noise spreads over all of them."""
    daemon = [sys.executable, "-m", "vodarchiver", "run"]
    results: dict[str, list[Sample]] = {
        "baseline": [],
        "external": [],
        "embedded": [],
        "restart": [],
    }
    for _ in range(RUNS):
        port = free_loopback_port()
        results["baseline"].append(
            await start_once([sys.executable, str(HELLO), str(port)], base_env(), port)
        )

        name, url = await admin_database(admin_url, "startup")
        try:
            port = free_loopback_port()
            env = base_env(DATABASE_URL=url, HTTP_ADDR=f"127.0.0.1:{port}")
            results["external"].append(await start_once(daemon, env, port))
        finally:
            await drop_db(admin_url, name)

        data = open_dir("data")
        try:
            port = free_loopback_port()
            env = base_env(DATA_DIR=str(data), HTTP_ADDR=f"127.0.0.1:{port}")
            results["embedded"].append(await start_once(daemon, env, port))
            results["restart"].append(await start_once(daemon, env, port))
        finally:
            shutil.rmtree(data, ignore_errors=True)
    return results


def report(results: dict[str, list[Sample]]) -> None:
    """Print medians, spreads and ratios against the baseline."""
    labels = {
        "baseline": "baseline: python + starlette + uvicorn, nothing else",
        "external": "daemon, external PostgreSQL, empty database (migrates)",
        "embedded": "daemon, embedded PostgreSQL, first start (initdb)",
        "restart": "daemon, embedded PostgreSQL, restart on its data",
    }
    base_t = statistics.median(s.seconds for s in results["baseline"])
    base_m = statistics.median(s.rss_mb for s in results["baseline"])
    print(f"\n== start-up: spawn to first /healthz 200 (median of {RUNS}, min..max) ==")
    print(f"{'case':<58} {'seconds':>8} {'spread':>15} {'x baseline':>11}")
    for key, label in labels.items():
        times = [s.seconds for s in results[key]]
        med = statistics.median(times)
        print(f"{label:<58} {med:8.3f} {min(times):7.3f}..{max(times):<7.3f} {med / base_t:10.2f}x")
    print(f"\n== idle memory once started (median of {RUNS}) ==")
    print(f"{'case':<58} {'RSS MB':>8} {'x baseline':>11} {'server PSS MB':>14}")
    for key, label in labels.items():
        rss = statistics.median(s.rss_mb for s in results[key])
        pss = statistics.median(s.children_pss_mb for s in results[key])
        extra = f"{pss:14.1f}" if key in ("embedded", "restart") else f"{'-':>14}"
        print(f"{label:<58} {rss:8.1f} {rss / base_m:10.2f}x {extra}")


async def main(admin_url: str) -> None:
    """Run the cases against the external server and report."""
    report(await run_cases(admin_url))
