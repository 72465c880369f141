"""A VOD of at least 1 GB in at least 1,000 fragments, downloaded by the stage, against a raw
baseline that fetches the same fragments in parallel with httpx to disk, in the same run.

The fake CDN runs in a process of its own, with a per-request latency and a per-connection
bandwidth cap (a real CDN answers after tens of milliseconds; on bare loopback the work would be
CPU-bound and concurrency would not show). Both sides use the same concurrency. The stage's
figure is the whole job: yt-dlp's download, ffmpeg's remux to a faststart mp4 (fed during the
download), ffprobe's check. The ratio is raw time over stage time, paired within each run; the
median is printed with the spread of the runs.
Peak memory is the largest resident set among the stage's child processes (yt-dlp, ffmpeg) and
this process's own. yt-dlp without fragment concurrency is printed as the naive reference.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import psycopg_pool

from bench.common import admin_database, drop_db, open_dir
from tests.media import HlsVod, make_hls
from vodarchiver.db.migrate import migrate
from vodarchiver.db.store import Store
from vodarchiver.media.downloader import Downloader
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.download import DownloadPolicy, DownloadStage

LATENCY_S = float(os.environ.get("BENCH_CDN_LATENCY_S", "0.05"))
THROTTLE_BPS = float(os.environ.get("BENCH_CDN_THROTTLE_BPS", str(10 * 2**20)))
CONCURRENCY = [int(n) for n in os.environ.get("BENCH_FRAGMENTS", "4,8,16,32").split(",")]
RUNS = int(os.environ.get("BENCH_DOWNLOAD_RUNS", "1"))  # each run moves over a gigabyte
NAIVE = os.environ.get("BENCH_NAIVE", "1") == "1"


def big_vod() -> HlsVod:
    """1,000 one-second fragments of about 1 MB each (noise does not compress)."""
    return make_hls(1010, segment_s=1, size="640x360", fps=10, video_kbps=8600, noise=True)


async def start_cdn(vod: HlsVod) -> tuple[asyncio.subprocess.Process, str]:
    """The fake CDN in its own process; returns it and its base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.cdn", f"big={vod.directory}",
        "--latency", str(LATENCY_S), "--throttle", str(THROTTLE_BPS),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    port = int((await proc.stdout.readline()).decode())
    return proc, f"http://127.0.0.1:{port}/vods/big/index.m3u8"


async def raw_baseline(url: str, fragments: int, target: Path) -> float:
    """Seconds to fetch every fragment with httpx, `fragments` at a time, each to a file."""
    target.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    limits = httpx.Limits(max_connections=fragments, max_keepalive_connections=fragments)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        playlist = (await http.get(url)).text
        names = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        base = url.rsplit("/", 1)[0]
        limit = asyncio.Semaphore(fragments)

        async def fetch(name: str) -> None:
            async with limit, http.stream("GET", f"{base}/{name}") as response:
                with open(target / name, "wb") as fh:  # noqa: ASYNC230 - a benchmark baseline
                    async for chunk in response.aiter_bytes(1 << 20):
                        fh.write(chunk)

        await asyncio.gather(*(fetch(n) for n in names))
    return time.perf_counter() - begin


async def stage_run(url: str, fragments: int, vod: HlsVod, admin_url: str) -> float:
    """Seconds for the download stage to deliver a verified mp4 of the VOD."""
    name, db_url = await admin_database(admin_url, "download")
    data = open_dir("download")
    try:
        await migrate(db_url)
        now = datetime.now(UTC)
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, state, url, duration_s, date, expires_at) "
                "VALUES ('1', 'bench', 'queued', %s, %s, %s, %s)",
                [url, round(vod.duration_s), now, now + timedelta(days=7)],
            )
        async with psycopg_pool.AsyncConnectionPool(
            db_url, min_size=1, max_size=2, open=False
        ) as pool:
            policy = DownloadPolicy(1, 1, 60, 60, 0, 1.0)
            stage = DownloadStage(Store(pool), Downloader(fragments=fragments), Metrics("bench"),
                                  data_dir=data, policy=policy)  # fmt: skip
            begin = time.perf_counter()
            await stage.run_once()
            elapsed = time.perf_counter() - begin
            state = await (await pool.getconn()).execute("SELECT state FROM vods")
        row = await state.fetchone()
        assert row == ("downloaded",), row
        return elapsed
    finally:
        shutil.rmtree(data, ignore_errors=True)
        await drop_db(admin_url, name)


async def naive_ytdlp(url: str) -> float:
    """Seconds for plain yt-dlp, one fragment at a time, download only."""
    target = Path(tempfile.mkdtemp(prefix="vodarchiver-bench-naive-"))
    try:
        begin = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "yt_dlp", "--ignore-config", "--no-cache-dir", "--quiet",
            "--downloader", "m3u8:native", "--hls-use-mpegts", "--fixup", "never",
            "-o", str(target / "v.ts"), url,
        )  # fmt: skip
        await proc.wait()
        return time.perf_counter() - begin
    finally:
        shutil.rmtree(target, ignore_errors=True)


async def main(admin_url: str) -> None:
    """Run every case and print the ratios."""
    vod = big_vod()
    cdn, url = await start_cdn(vod)
    results: dict[int, tuple[list[float], list[float]]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="vodarchiver-bench-raw-"))
    try:
        for fragments in CONCURRENCY:
            raws, stages = [], []
            for _ in range(RUNS):
                raws.append(await raw_baseline(url, fragments, scratch / str(fragments)))
                shutil.rmtree(scratch / str(fragments), ignore_errors=True)
                stages.append(await stage_run(url, fragments, vod, admin_url))
            results[fragments] = (raws, stages)
        naive = await naive_ytdlp(url) if NAIVE else None
        # Before the CDN is reaped: it holds the whole VOD in memory and is not the stage.
        children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        cdn.kill()
        await cdn.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    own_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_gb = vod.total_bytes / 1e9
    print(f"\n== download: {size_gb:.2f} GB in {vod.segments} fragments, fake CDN with "
          f"{LATENCY_S * 1000:.0f} ms per request and {THROTTLE_BPS / 2**20:.0f} MiB/s per "
          f"connection (median of {RUNS}) ==")  # fmt: skip
    print(f"{'fragments at once':<18} {'raw httpx s':>12} {'stage s':>9} {'stage MB/s':>11} "
          f"{'ratio':>7}  spread (each run's ratio)")  # fmt: skip
    for fragments, (raws, stages) in results.items():
        raw, stage = statistics.median(raws), statistics.median(stages)
        ratios = sorted(r / s for r, s in zip(raws, stages, strict=True))
        spread = f"{ratios[0]:.2f} to {ratios[-1]:.2f}" if len(ratios) > 1 else ""
        print(f"{fragments:<18} {raw:12.1f} {stage:9.1f} {vod.total_bytes / 2**20 / stage:11.1f} "
              f"{statistics.median(ratios):7.2f}  {spread}")  # fmt: skip
    if naive is not None:
        print(f"{'naive: yt-dlp -N 1':<18} {'':>12} {naive:9.1f} {vod.total_bytes / 2**20 / naive:11.1f}"
              f"   (download only)")  # fmt: skip
    print(
        f"peak resident memory: largest child (yt-dlp, ffmpeg) {children_mb:.0f} MB, "
        f"this process {own_mb:.0f} MB"
    )
