"""The web console's pages at 1,000 VODs and at 100,000 VODs with 1,000,000 chat messages.

Each size gets a fresh database, seeded in SQL with generate_series (seconds, not minutes), and
a real daemon (`python -m vodarchiver run`, no Twitch or YouTube settings, so nothing changes the
rows while we measure). Every page is fetched BENCH_CONSOLE_RUNS times after two warm-up fetches;
the figure is the median time from request to the last byte on loopback, which is the server's
time plus well under a millisecond. Printed: the median per page at each size, and the ratio
large/small. Goal (issue 11): within 2x, and under 300 ms at 100,000 VODs.

The chat page at the large size reads a VOD with 1,000,000 messages: its first page, a page an
hour in (keyset from a time), and a text search that matches one message near the end.
`python -m bench.console` runs this benchmark alone.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

import httpx
import psycopg

from bench.common import admin_database, drop_db, external_server, open_dir
from vodarchiver.db.embedded import free_loopback_port
from vodarchiver.db.migrate import migrate

RUNS = int(os.environ.get("BENCH_CONSOLE_RUNS", "20"))
SMALL = int(os.environ.get("BENCH_CONSOLE_SMALL", "1000"))
LARGE = int(os.environ.get("BENCH_CONSOLE_LARGE", "100000"))
CHAT = int(os.environ.get("BENCH_CONSOLE_CHAT", "1000000"))
START_TIMEOUT_S = 60.0

PAGES = {
    "dashboard": "/",
    "dashboard live part": "/ui/dashboard/live",
    "VOD list (expiry)": "/ui/vods",
    "VOD list (date, one channel, one state)": "/ui/vods?sort=date&channel=alice&state=uploaded",
    "VOD list (title search)": "/ui/vods?q=number%2012345",
    "VOD page": "/ui/vods/1",
    "chat, first page": "/ui/vods/1/chat",
    "chat, from 1:00:00": "/ui/vods/1/chat?t=1:00:00",
    "chat, text search": "/ui/vods/1/chat?q=needle",
    "chat API page (GET /vods/{id}/chat)": "/vods/1/chat?from=3600&limit=500",
}

SEED_VODS = """
INSERT INTO vods (twitch_vod_id, channel, title, state, date, expires_at, duration_s, retention_days)
SELECT g::text, (ARRAY['alice', 'bob', 'carol', 'dave'])[1 + g %% 4], 'Stream number ' || g,
       (ARRAY['uploaded', 'uploaded', 'uploaded', 'queued', 'failed_permanent', 'gone',
              'canceled', 'downloaded'])[1 + g %% 8],
       now() - g * interval '10 minutes', now() - g * interval '10 minutes' + interval '60 days',
       3600, 60
FROM generate_series(1, %(n)s) g
"""
SEED_CHAT = """
INSERT INTO chat_messages (msg_id, vod_id, channel, username, display_name, message, sent_at,
                           offset_ms, raw_tags)
SELECT 'm' || g, (SELECT id FROM vods WHERE twitch_vod_id = '1'), 'alice', 'user' || (g %% 997),
       'User' || (g %% 997), CASE WHEN g = %(n)s - 5 THEN 'the needle' ELSE 'message ' || g END,
       now(), g * 20, CASE WHEN g %% 10 = 0 THEN 'badges=subscriber/12' ELSE '' END
FROM generate_series(1, %(n)s) g
"""


async def seed(url: str, vods: int, chat: int) -> None:
    """`vods` VODs over four channels and `chat` messages on VOD 1, then VACUUM ANALYZE.

    VACUUM sets the visibility map, as autovacuum does on a live archive, so counts can use
    index-only scans; without it a freshly loaded table reads every heap page.
    """
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(SEED_VODS, {"n": vods})
        if chat:
            await conn.execute(SEED_CHAT, {"n": chat})
        await conn.execute("VACUUM ANALYZE")


async def start_daemon(url: str) -> tuple[asyncio.subprocess.Process, str]:
    """A daemon on a free port over `url`; returns it and its base URL once /healthz is 200."""
    port = free_loopback_port()
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(DATABASE_URL=url, DATA_DIR=str(open_dir("console")), HTTP_ADDR=f"127.0.0.1:{port}",
               ENV_FILE=os.devnull, LOG_LEVEL="warning", TWITCH_CHANNELS="alice,bob,carol,dave")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vodarchiver", "run", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)  # a bounded poll for start-up, not synchronisation
    proc.kill()
    await proc.wait()
    raise TimeoutError("the daemon did not answer /healthz")


async def measure(base: str) -> dict[str, float]:
    """Median milliseconds per page."""
    out = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for name, path in PAGES.items():
            for _ in range(2):
                (await client.get(base + path)).raise_for_status()
            samples = []
            for _ in range(RUNS):
                begin = time.perf_counter()
                answer = await client.get(base + path)
                samples.append((time.perf_counter() - begin) * 1000)
                answer.raise_for_status()
            out[name] = statistics.median(samples)
    return out


async def one_size(admin_url: str, vods: int, chat: int) -> dict[str, float]:
    """Seed a fresh database of this size, start a daemon on it, measure every page."""
    name, url = await admin_database(admin_url, "console")
    try:
        await migrate(url)
        begin = time.perf_counter()
        await seed(url, vods, chat)
        print(
            f"  seeded {vods:,} VODs and {chat:,} chat messages in {time.perf_counter() - begin:.1f} s"
        )
        proc, base = await start_daemon(url)
        try:
            return await measure(base)
        finally:
            proc.terminate()
            await proc.wait()
    finally:
        await drop_db(admin_url, name)


async def main(admin_url: str) -> None:
    """Print the median time per page at both sizes and their ratio."""
    print(f"\nconsole pages (median of {RUNS}, ms)")
    small = await one_size(admin_url, SMALL, min(CHAT, SMALL * 10))
    large = await one_size(admin_url, LARGE, CHAT)
    print(f"  {'page':42} {SMALL:>10,} {LARGE:>10,}  ratio")
    for page in PAGES:
        ratio = large[page] / small[page] if small[page] else float("inf")
        goal = "ok" if ratio <= 2 and large[page] < 300 else "MISSED"
        print(f"  {page:42} {small[page]:10.1f} {large[page]:10.1f}  {ratio:5.2f}x  {goal}")


if __name__ == "__main__":

    async def _alone() -> None:
        async with external_server() as admin_url:
            await main(admin_url)

    asyncio.run(_alone())
