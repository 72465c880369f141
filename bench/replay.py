"""Chat replay of a 100,000-message VOD from the fake GQL with 50 ms per request: messages stored
per second against the same pages fetched by raw httpx in the same run (goal: 0.9 or better).

The baseline walks the VOD's cursor pages with plain httpx and only decodes the JSON: the floor
for any replay, since every page waits for the previous one's cursor. The replay stage does the
same walk through GqlClient, parses every comment and stores each page with its resume point in
one PostgreSQL transaction while the next page is being fetched.
"""

from __future__ import annotations

import os
import statistics
import time

import httpx
import psycopg
import psycopg_pool
from prometheus_client import CollectorRegistry
from psycopg import sql

from bench.common import admin_database, drop_db
from tests.fakes.gql import FakeGql
from tests.fakes.server import LocalServer
from vodarchiver.archive_metrics import ArchiveMetrics
from vodarchiver.db.migrate import migrate
from vodarchiver.db.replay_store import ReplayStore
from vodarchiver.pipeline.chat_replay import ChatReplay
from vodarchiver.twitch.gql import GqlClient
from vodarchiver.twitch.gql_models import comments_request

MESSAGES = int(os.environ.get("BENCH_REPLAY_MESSAGES", "100000"))
LATENCY_S = float(os.environ.get("BENCH_REPLAY_LATENCY_S", "0.05"))
RUNS = int(os.environ.get("BENCH_REPLAY_RUNS", "1"))  # one run is ~2 x 100 s at 50 ms a page
CLIENT_ID = "kd1unb4b3q4t58fwlpcbzcbnm76a8fp"
VOD = "2100000001"


async def raw_baseline(server: LocalServer) -> tuple[float, int]:
    """Seconds to walk every page by cursor with plain httpx, and the messages seen."""
    seen = 0
    cursor: str | None = None
    headers = {"Client-ID": CLIENT_ID, "Content-Type": "application/json"}
    begin = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as http:
        while True:
            body = comments_request(VOD, offset_s=0, cursor=cursor)
            page = (await http.post(f"{server.url}/gql", json=body, headers=headers)).json()
            comments = page["data"]["video"]["comments"]
            seen += len(comments["edges"])
            if not comments["pageInfo"]["hasNextPage"] or not comments["edges"]:
                break
            cursor = comments["edges"][-1]["cursor"]
    return time.perf_counter() - begin, seen


async def one_run(admin_url: str) -> dict[str, float]:
    """The baseline and one replay of the VOD into a fresh database."""
    fake = FakeGql()
    fake.add_video(VOD, length_s=6 * 3600)
    fake.script_chat(VOD, MESSAGES)
    fake.latency_s = LATENCY_S
    name, url = await admin_database(admin_url, "replay")
    try:
        await migrate(url)
        async with (
            LocalServer(fake) as server,
            httpx.AsyncClient(timeout=30) as http,
            psycopg_pool.AsyncConnectionPool(url, min_size=2, max_size=4, open=False) as pool,
        ):
            base_s, seen = await raw_baseline(server)
            assert seen == MESSAGES, seen
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(sql.SQL(
                    "INSERT INTO vods (twitch_vod_id, channel, date, duration_s, state) "
                    "VALUES (%s, 'bench', now(), 21600, 'queued')"), [VOD])  # fmt: skip
                # Chapters are one more request; leave them out of both sides.
                await conn.execute(sql.SQL("INSERT INTO chat_replays (vod_id, chapters_at) "
                                           "SELECT id, now() FROM vods"))  # fmt: skip
            store = ReplayStore(pool)
            gql = GqlClient(http, url=server.url, client_id=CLIENT_ID, timeout_s=30)
            stage = ChatReplay(gql, store, ArchiveMetrics(CollectorRegistry()), owner="bench:1",
                               interval_s=0, retry_s=3600)  # fmt: skip
            begin = time.perf_counter()
            job = await store.claim("bench:1", 600, prefix="bench:")
            assert job is not None
            outcome = await stage.replay(job)
            ours_s = time.perf_counter() - begin
            assert outcome == "done", outcome
            async with await psycopg.AsyncConnection.connect(url) as conn:
                cur = await conn.execute(sql.SQL("SELECT count(*) FROM chat_messages"))
                row = await cur.fetchone()
            assert row == (MESSAGES,), row
    finally:
        await drop_db(admin_url, name)
    return {"baseline_s": base_s, "replay_s": ours_s}


async def main(admin_url: str) -> None:
    """Run, then print messages per second stored against the raw walk."""
    runs = [await one_run(admin_url) for _ in range(RUNS)]
    base = statistics.median(r["baseline_s"] for r in runs)
    ours = statistics.median(r["replay_s"] for r in runs)
    ratios = [r["baseline_s"] / r["replay_s"] for r in runs]
    print(f"\n== chat replay: {MESSAGES:,} messages, fake GQL with {LATENCY_S * 1000:.0f} ms per "
          f"request, 50 a page (median of {RUNS}) ==")  # fmt: skip
    print(f"{'what':<46} {'seconds':>8} {'msg/s':>8} {'x raw':>7}")
    print(f"{'raw httpx: every page by cursor, JSON only':<46} {base:8.1f} "
          f"{MESSAGES / base:8.0f} {1:7.2f}")  # fmt: skip
    print(f"{'replay stage: parsed, stored, resumable':<46} {ours:8.1f} {MESSAGES / ours:8.0f} "
          f"{base / ours:7.2f}  (runs: {', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
