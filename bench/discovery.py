"""Discovery of 10 channels x 1,000 VODs against the fake Twitch: requests made against the
minimum possible, and wall time against a raw baseline in the same run.

The fake adds a per-request latency (a real Helix answers after tens of milliseconds; on bare
loopback the request count would hardly show). The baseline fetches exactly the minimal set of
pages (users, streams, and every videos page) with plain httpx, the same concurrency as
discovery, through the same fake, and stores nothing: the floor for any discovery.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from collections import Counter

import httpx
import psycopg
import psycopg_pool
from psycopg import sql

from bench.common import admin_database, drop_db
from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch
from vodarchiver.db.migrate import migrate
from vodarchiver.db.store import Store
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.discovery import Discovery
from vodarchiver.twitch.auth import AppToken
from vodarchiver.twitch.helix import HelixClient
from vodarchiver.values import Secret

CHANNELS = int(os.environ.get("BENCH_CHANNELS", "10"))
VODS = int(os.environ.get("BENCH_VODS", "1000"))
LATENCY_S = float(os.environ.get("BENCH_LATENCY_S", "0.02"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CONCURRENCY = 4
PAGE = 100


def fake_twitch() -> FakeTwitch:
    """The fake with CHANNELS channels of VODS archives each."""
    fake = FakeTwitch()
    for i in range(CHANNELS):
        fake.add_channel(f"channel{i}")
        fake.add_vods(f"channel{i}", VODS)
    fake.latency_s = LATENCY_S
    return fake


async def raw_baseline(fake: FakeTwitch, server: LocalServer) -> float:
    """Seconds to fetch the minimal set of pages with plain httpx, CONCURRENCY at a time."""
    logins = [f"channel{i}" for i in range(CHANNELS)]
    begin = time.perf_counter()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        form = {"client_id": fake.client_id, "client_secret": fake.client_secret,
                "grant_type": "client_credentials"}  # fmt: skip
        token = (await http.post("/oauth2/token", data=form)).json()["access_token"]
        headers = {"Client-Id": fake.client_id, "Authorization": f"Bearer {token}"}
        users = (
            await http.get("/helix/users", params=[("login", x) for x in logins], headers=headers)
        ).json()
        ids = [u["id"] for u in users["data"]]
        await http.get("/helix/streams", params=[("user_id", x) for x in ids], headers=headers)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def channel(user_id: str) -> None:
            cursor = None
            async with limit:
                while True:
                    params = {"user_id": user_id, "type": "archive", "first": str(PAGE)}
                    if cursor:
                        params["after"] = cursor
                    body = (await http.get("/helix/videos", params=params, headers=headers)).json()
                    cursor = body["pagination"].get("cursor")
                    if not cursor:
                        return

        await asyncio.gather(*(channel(i) for i in ids))
    return time.perf_counter() - begin


async def one_run(admin_url: str) -> dict[str, float | Counter[str]]:
    """A first and a second discovery pass on a fresh database, and the baseline."""
    fake = fake_twitch()
    name, url = await admin_database(admin_url, "discovery")
    results: dict[str, float | Counter[str]] = {}
    try:
        await migrate(url)
        async with (
            LocalServer(fake) as server,
            httpx.AsyncClient(timeout=30) as http,
            psycopg_pool.AsyncConnectionPool(url, min_size=2, max_size=8, open=False) as pool,
        ):
            results["baseline_s"] = await raw_baseline(fake, server)
            fake.reset()
            metrics = Metrics("bench")
            token = AppToken(http, auth_url=f"{server.url}/oauth2", client_id=fake.client_id,
                             client_secret=Secret(fake.client_secret), metrics=metrics)  # fmt: skip
            helix = HelixClient(http, token, api_url=f"{server.url}/helix",
                                client_id=fake.client_id, metrics=metrics)  # fmt: skip
            discovery = Discovery(
                helix, Store(pool), metrics, channels=[f"channel{i}" for i in range(CHANNELS)],
                retention_overrides={}, interval_s=300, concurrency=CONCURRENCY,
            )  # fmt: skip
            for label in ("first", "second"):
                begin = time.perf_counter()
                outcomes = await discovery.run_pass()
                results[f"{label}_s"] = time.perf_counter() - begin
                results[f"{label}_requests"] = Counter(r.endpoint for r in fake.received)
                assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
                fake.reset()
            async with await psycopg.AsyncConnection.connect(url) as conn:
                cur = await conn.execute(sql.SQL("SELECT count(DISTINCT twitch_vod_id) FROM vods"))
                row = await cur.fetchone()
            assert row == (CHANNELS * VODS,), row
    finally:
        await drop_db(admin_url, name)
    return results


async def main(admin_url: str) -> None:
    """Run, then print requests against the minimum and wall time against the baseline."""
    runs = [await one_run(admin_url) for _ in range(RUNS)]
    pages = math.ceil(VODS / PAGE)
    minimum = {
        "first": Counter(token=1, users=1, streams=1, videos=CHANNELS * pages),
        "second": Counter(streams=1, videos=CHANNELS),
    }
    print(f"\n== discovery: {CHANNELS} channels x {VODS} VODs, fake Helix with "
          f"{LATENCY_S * 1000:.0f} ms per request, {CONCURRENCY} channels at a time "
          f"(median of {RUNS}) ==")  # fmt: skip
    base = statistics.median(float(r["baseline_s"]) for r in runs)  # type: ignore[arg-type]
    print(f"{'pass':<40} {'requests':>9} {'minimum':>8} {'seconds':>8} {'x baseline':>11}")
    print(f"{'baseline: raw httpx, minimal pages, no DB':<40} {sum(minimum['first'].values()):>9} "
          f"{sum(minimum['first'].values()):>8} {base:8.2f} {1:10.2f}x")  # fmt: skip
    for label in ("first", "second"):
        counts: Counter[str] = runs[0][f"{label}_requests"]  # type: ignore[assignment]
        wall = statistics.median(float(r[f"{label}_s"]) for r in runs)  # type: ignore[arg-type]
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"{label + ' pass (' + detail + ')':<40} {sum(counts.values()):>9} "
              f"{sum(minimum[label].values()):>8} {wall:8.2f} {wall / base:10.2f}x")  # fmt: skip
