"""`/status`, `/metrics` and `GET /vods` at 1,000, 100,000 and 1,000,000 VODs (issue 15).

Each size gets a fresh database, seeded in SQL with generate_series, and a real daemon (the
console benchmark's: `python -m vodarchiver run`, no Twitch or YouTube settings, so nothing changes
the rows while we measure). The archive is shaped like an old one: the newest 500 VODs are still
in the pipeline (queued, downloaded, retrying, waiting for auth; some expire within 48 hours), the
rest are uploaded, gone, failed or canceled; a few have a manual priority or no expiry. The
notifications the seed's `uploaded` rows raise are removed (they are pruned in production and are
not what this measures). Every request is fetched BENCH_SCALE_RUNS times after two warm-ups; the
figure is the median time from request to last byte on loopback. All the daemons run at once and
the sizes take turns request by request, so that a shared machine's noise falls on each alike.
Printed: the median at each size and its ratio to the smallest. Goal: every ratio at most 2x from
1,000 to 1,000,000 VODs.

The pages: the first page of the queue, its last page (by the `next` cursor of the page before
it), and the same two of one channel's uploaded VODs. Then 8 concurrent scrapes of `/metrics` at
the largest size, and how many of them said the database was down.
`python -m bench.scale` runs this benchmark alone; BENCH_SCALE_SIZES=1000,100000 chooses sizes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import httpx
import psycopg

from bench.common import admin_database, drop_db, external_server
from bench.console import start_daemon
from vodarchiver import logs
from vodarchiver.db.migrate import migrate

RUNS = int(os.environ.get("BENCH_SCALE_RUNS", "15"))
SIZES = [int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "1000,100000,1000000").split(",")]
LIMIT = 50

SEED = """
INSERT INTO vods (twitch_vod_id, channel, title, state, date, expires_at, duration_s,
                  retention_days, priority, processed)
SELECT g::text, (ARRAY['alice', 'bob', 'carol', 'dave'])[1 + g %% 4], 'Stream number ' || g,
       CASE WHEN g <= 500
            THEN (ARRAY['queued', 'queued', 'downloaded', 'failed_retryable',
                        'waiting_for_auth'])[1 + g %% 5]
            ELSE (ARRAY['uploaded', 'uploaded', 'uploaded', 'uploaded', 'uploaded', 'gone',
                        'failed_permanent', 'canceled'])[1 + g %% 8] END,
       now() - g * interval '10 minutes',
       CASE WHEN g %% 97 = 0 THEN NULL
            WHEN g <= 500 THEN now() + (g %% 96) * interval '1 hour'
            ELSE now() - g * interval '10 minutes' + interval '60 days' END,
       3600, 60, CASE WHEN g %% 5000 = 0 THEN 1 ELSE 0 END,
       CASE WHEN g > 500 AND g %% 8 < 5 THEN 1 ELSE 0 END
FROM generate_series(1, %(n)s) g
"""

# The cursor of the row just before the last page, as `GET /vods` writes its `next`.
LAST_PAGE_CURSOR = """
SELECT priority || '_' || CASE WHEN expires_at IS NULL THEN 'infinity'
       ELSE to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END
       || '_' || id
FROM vods
WHERE (%(channel)s::text IS NULL OR channel = %(channel)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
ORDER BY -(priority::bigint), coalesce(expires_at, 'infinity'::timestamptz), id
OFFSET greatest((SELECT count(*) FROM vods
                 WHERE (%(channel)s::text IS NULL OR channel = %(channel)s)
                   AND (%(state)s::text IS NULL OR state = %(state)s)) - %(limit)s - 1, 0)
LIMIT 1
"""

FILTER = {"channel": "alice", "state": "uploaded"}


async def seed(url: str, n: int) -> dict[str, str]:
    """`n` VODs, VACUUM ANALYZE (the visibility map autovacuum keeps), and the last pages' paths."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(SEED, {"n": n})
        await conn.execute("DELETE FROM notifications")
        await conn.execute("VACUUM ANALYZE")
        unfiltered = await (await conn.execute(
            LAST_PAGE_CURSOR, {"channel": None, "state": None, "limit": LIMIT})).fetchone()  # fmt: skip
        filtered = await (await conn.execute(
            LAST_PAGE_CURSOR, {**FILTER, "limit": LIMIT})).fetchone()  # fmt: skip
    assert unfiltered, "no VODs"
    assert filtered, "no VODs of the filter"
    query = f"channel={FILTER['channel']}&state={FILTER['state']}&limit={LIMIT}"
    return {
        "/status": "/status",
        "/metrics": "/metrics",
        "/vods first page": f"/vods?limit={LIMIT}",
        "/vods last page (after)": f"/vods?limit={LIMIT}&after={unfiltered[0]}",
        "/vods?channel&state first page": f"/vods?{query}",
        "/vods?channel&state last page": f"/vods?{query}&after={filtered[0]}",
    }


async def measure(sites: list[tuple[str, dict[str, str]]]) -> list[dict[str, float]]:
    """Median milliseconds per request at each size. The sizes take turns request by request, so
    the noise of a shared machine falls on all of them alike; a last page must hold items and
    end the listing."""
    samples: list[dict[str, list[float]]] = [{} for _ in sites]
    async with httpx.AsyncClient(timeout=30) as client:
        for name in sites[0][1]:
            for base, paths in sites:
                for _ in range(2):
                    (await client.get(base + paths[name])).raise_for_status()
            for _ in range(RUNS):
                for i, (base, paths) in enumerate(sites):
                    begin = time.perf_counter()
                    answer = await client.get(base + paths[name])
                    samples[i].setdefault(name, []).append((time.perf_counter() - begin) * 1000)
                    answer.raise_for_status()
                    if "last page" in name:
                        page = answer.json()
                        assert page["items"], name
                        assert page["next"] is None, (name, page["next"])
    return [{name: statistics.median(s) for name, s in site.items()} for site in samples]


async def concurrent_scrapes(base: str, n: int = 8) -> tuple[int, float]:
    """`n` simultaneous scrapes: how many said the database was down, and the slowest (ms)."""
    async with httpx.AsyncClient(timeout=30) as client:

        async def one() -> tuple[bool, float]:
            begin = time.perf_counter()
            text = (await client.get(f"{base}/metrics")).text
            return "vodarchiver_database_up 0.0" in text, (time.perf_counter() - begin) * 1000

        results = await asyncio.gather(*(one() for _ in range(n)))
    return sum(down for down, _ in results), max(ms for _, ms in results)


async def main(admin_url: str) -> None:
    """Seed every size, start a daemon on each, and print the median per request at each size
    and its ratio to the smallest."""
    print(f"\nscale: /status, /metrics, /vods (median of {RUNS}, ms; ratio to {SIZES[0]:,} VODs)")
    names: list[str] = []
    daemons: list[asyncio.subprocess.Process] = []
    try:
        sites = []
        for n in SIZES:
            name, url = await admin_database(admin_url, "scale")
            names.append(name)
            await migrate(url)
            begin = time.perf_counter()
            paths = await seed(url, n)
            print(f"  seeded {n:,} VODs in {time.perf_counter() - begin:.1f} s")
            proc, base = await start_daemon(url)
            daemons.append(proc)
            sites.append((base, paths))
        results = await measure(sites)
        down, slowest = await concurrent_scrapes(sites[-1][0])
        print(f"  8 concurrent scrapes of /metrics at {SIZES[-1]:,} VODs: database_up 0 in "
              f"{down} of 8, slowest {slowest:.1f} ms")  # fmt: skip
    finally:
        for proc in daemons:
            proc.terminate()
            await proc.wait()
        for name in names:
            await drop_db(admin_url, name)
    header = "".join(f"{n:>20,}" for n in SIZES)
    print(f"  {'request':32}{header}  goal")
    for request in results[0]:
        base_ms = results[0][request]
        ratios = [r[request] / base_ms if base_ms else float("inf") for r in results]
        cells = "".join(
            f"{r[request]:10.1f} ({x:4.2f}x)" for r, x in zip(results, ratios, strict=True)
        )
        print(f"  {request:32}{cells}  {'ok' if max(ratios) <= 2 else 'MISSED'}")


if __name__ == "__main__":

    async def _alone() -> None:
        logs.configure("warning", "text")
        async with external_server() as admin_url:
            await main(admin_url)

    asyncio.run(_alone())
