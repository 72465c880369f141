"""A 2 GB file published by the upload stage, against a raw httpx streaming PUT of the same file
to the same fake YouTube, in the same run.

The fake Google (OAuth + the resumable protocol, hashing every byte it keeps) runs in a process
of its own. The raw baseline opens a session and streams the whole file in one PUT: the least a
client can do. The stage's figure is the whole job: claim, fingerprint, quota, session, every
chunk with its 308 and progress write, the final status check, the record. Each chunk size in
BENCH_UPLOAD_CHUNKS is measured; peak resident memory is sampled during the stage's run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
import psycopg_pool

from bench.common import admin_database, drop_db, open_dir
from vodarchiver.db.migrate import migrate
from vodarchiver.db.uploads import UploadStore
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.publish import Publisher, PublishPolicy
from vodarchiver.pipeline.quota import QuotaPlan, parse_budgets, parse_costs
from vodarchiver.pipeline.upload import UploadPolicy, UploadStage
from vodarchiver.values import Secret, parse_size
from vodarchiver.youtube.client import YouTubeClient
from vodarchiver.youtube.crypto import TokenCipher
from vodarchiver.youtube.oauth import GoogleAuth

SIZE = parse_size(os.environ.get("BENCH_UPLOAD_SIZE", "2G"))
CHUNKS = [parse_size(c) for c in os.environ.get("BENCH_UPLOAD_CHUNKS", "16M,64M,128M").split(",")]
RUNS = int(os.environ.get("BENCH_UPLOAD_RUNS", "3"))
_BLOCK = 64 * 2**20


def make_file(directory: Path) -> Path:
    """SIZE bytes of incompressible data (a random block, repeated)."""
    path = directory / "vod.mp4"
    block = os.urandom(_BLOCK)
    with path.open("wb") as f:
        left = SIZE
        while left:
            f.write(block[: min(left, _BLOCK)])
            left -= min(left, _BLOCK)
    return path


async def start_fake() -> tuple[asyncio.subprocess.Process, str, dict[str, str]]:
    """The fake Google in its own process: it, its base URL and its credentials."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.youtube", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    base = (await proc.stdout.readline()).decode().strip()
    creds = {}
    for _ in range(3):
        key, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
        creds[key] = value
    return proc, base, creds


async def raw_put(base: str, creds: dict[str, str], path: Path) -> float:
    """Seconds for one streaming PUT of the whole file into a fresh session."""
    async with httpx.AsyncClient(timeout=300) as http:
        token = (await http.post(f"{base}/token", data={
            "grant_type": "refresh_token", "refresh_token": creds["GOOGLE_REFRESH_TOKEN"],
            "client_id": creds["GOOGLE_CLIENT_ID"],
            "client_secret": creds["GOOGLE_CLIENT_SECRET"]})).json()["access_token"]  # fmt: skip
        begin = time.perf_counter()
        opened = await http.post(
            f"{base}/upload/youtube/v3/videos",
            params={"uploadType": "resumable", "part": "snippet,status"},
            headers={"Authorization": f"Bearer {token}", "X-Upload-Content-Length": str(SIZE),
                     "X-Upload-Content-Type": "video/*"},
            json={"snippet": {"title": "raw"}, "status": {"privacyStatus": "private"}},
        )  # fmt: skip

        async def body() -> object:
            with path.open("rb") as f:
                while piece := f.read(4 * 2**20):
                    yield piece

        done = await http.put(opened.headers["location"], content=body(), headers={  # type: ignore[arg-type]
            "Content-Length": str(SIZE), "Content-Range": f"bytes 0-{SIZE - 1}/{SIZE}"})  # fmt: skip
        assert done.status_code in (200, 201), done.status_code
        return time.perf_counter() - begin


async def stage_run(base: str, creds: dict[str, str], path: Path, chunk: int,
                    admin_url: str) -> tuple[float, float]:  # fmt: skip
    """Seconds for the stage to publish the file, and the process's peak RSS meanwhile (MB)."""
    name, db_url = await admin_database(admin_url, "upload")
    data = open_dir("upload")
    try:
        await migrate(db_url)
        vod_dir = data / "bench" / "1"
        vod_dir.mkdir(parents=True)
        os.link(path, vod_dir / "1.mp4")
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, state, download_state, title, date, "
                "duration_s, url, file_path, file_size) VALUES ('1', 'bench', 'downloaded', "
                "'downloaded', 'bench', %s, 3600, 'https://www.twitch.tv/videos/1', %s, %s)",
                [datetime.now(UTC) - timedelta(days=1), str(vod_dir / "1.mp4"), SIZE],
            )  # fmt: skip
        async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2,
                                                    open=False) as pool, \
                httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as http:  # fmt: skip
            store = UploadStore(pool)
            metrics = Metrics("bench")
            auth = GoogleAuth(http, store, TokenCipher(os.urandom(32)), metrics,
                              token_url=f"{base}/token", client_id=creds["GOOGLE_CLIENT_ID"],
                              client_secret=Secret(creds["GOOGLE_CLIENT_SECRET"]),
                              bootstrap_token=Secret(creds["GOOGLE_REFRESH_TOKEN"]))  # fmt: skip
            await auth.bootstrap()
            quota = QuotaPlan(parse_budgets("default=1000000"), parse_costs(""))
            clock = lambda: datetime.now(UTC)  # noqa: E731
            publisher = Publisher(store, YouTubeClient(http, auth, api_url=base), quota, metrics,
                                  PublishPolicy(chunk, 8, 1.0, 60.0, 20, "20", "private"),
                                  clock=clock)  # fmt: skip
            policy = UploadPolicy(
                workers=1, max_attempts=1, backoff_base_s=60, backoff_max_s=60,
                circuit_threshold=5, circuit_cooldown=timedelta(minutes=1),
                upload_limit_cooldown=timedelta(hours=1), max_part_duration_s=43000,
                max_part_bytes=256 * 2**30, title_template="{title}",
                description_template="{url}", tags=(), playlists={},
            )  # fmt: skip
            stage = UploadStage(store, publisher, auth, quota, metrics, data_dir=data,
                                policy=policy, clock=clock)  # fmt: skip
            me = psutil.Process()
            peak = me.memory_info().rss
            done = asyncio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, me.memory_info().rss)
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            begin = time.perf_counter()
            await stage.run_once()
            elapsed = time.perf_counter() - begin
            done.set()
            await sampler
            row = await store.vod_get("1")
        assert row is not None
        assert row["state"] == "uploaded", (row["state"], row["processing_error"])
        return elapsed, peak / 2**20
    finally:
        shutil.rmtree(data, ignore_errors=True)
        await drop_db(admin_url, name)


async def main(admin_url: str) -> None:
    """Run every case and print the ratios."""
    scratch = open_dir("upload-file")
    fake, base, creds = await start_fake()
    results: dict[int, tuple[list[float], list[float], float]] = {}
    try:
        path = make_file(scratch)
        for chunk in CHUNKS:
            raws, stages, peak = [], [], 0.0
            for _ in range(RUNS):
                raws.append(await raw_put(base, creds, path))
                elapsed, rss = await stage_run(base, creds, path, chunk, admin_url)
                stages.append(elapsed)
                peak = max(peak, rss)
            results[chunk] = (raws, stages, peak)
    finally:
        fake.kill()
        await fake.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n== upload: {SIZE / 1e9:.2f} GB to the fake YouTube in its own process "
          f"(median of {RUNS}, ratio spread in brackets) ==")  # fmt: skip
    print(f"{'chunk':<8} {'raw PUT s':>10} {'stage s':>9} {'stage MB/s':>11} {'ratio':>7} "
          f"{'ratio range':>13} {'peak RSS MB':>12}")  # fmt: skip
    for chunk, (raws, stages, peak) in results.items():
        ratios = [r / s for r, s in zip(raws, stages, strict=True)]
        raw, stage = statistics.median(raws), statistics.median(stages)
        print(f"{chunk // 2**20:<6}M {raw:10.1f} {stage:9.1f} {SIZE / 2**20 / stage:11.1f} "
              f"{statistics.median(ratios):7.2f} {min(ratios):6.2f}-{max(ratios):<6.2f} "
              f"{peak:12.0f}")  # fmt: skip


if __name__ == "__main__":
    from bench.common import external_server
    from vodarchiver import logs

    async def _standalone() -> None:
        logs.configure("warning", "text")
        async with external_server() as admin_url:
            await main(admin_url)

    asyncio.run(_standalone())
