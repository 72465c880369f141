"""Idle claims and wake-ups: what a worker with nothing to do costs, and how soon new work starts.

Prints, on one PostgreSQL in one run:
- an idle claim (download and upload; nothing due) at 1k and at 1M VODs, medians of 50, and the
  ratio between the sizes; beside it the claim before migration 0014 (one statement over the
  partial index of every claimable state) at 1M, run over that index built for the occasion;
- the wake-up latency: from the commit of a new queued VOD to a worker's claim, through the
  LISTEN connection, with the fallback poll at 60 s, median of 20, against the 2.5 s a VOD waited
  on average under the former 5 s poll.
Run alone: `python -m bench.wakeups [large]` (large: the VOD count, 1,000,000 by default).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool

from bench.common import admin_database, drop_db, external_server
from vodarchiver import logs
from vodarchiver.db.migrate import migrate
from vodarchiver.db.uploads import UploadStore
from vodarchiver.db.wakeups import ClaimWakeups
from vodarchiver.models import DownloadClaim
from vodarchiver.pipeline.leased import LeasedWorkers, Owner, idle_wait

SMALL = 1_000
LARGE = 1_000_000
POLL_S = 60.0

# An archive: mostly uploaded, a few per cent in each state a stage may claim, none of them due
# (rows waiting for disk stamped a day ahead, so a slow build does not make them due).
FILL = """
INSERT INTO vods (twitch_vod_id, channel, state, download_state, url, file_path, priority,
                  expires_at, next_attempt_at, claimed_by, claim_until, updated_at)
SELECT 'b' || n, 'ch' || (n %% 1000),
       CASE n %% 100 WHEN 0 THEN 'failed_retryable' WHEN 1 THEN 'failed_retryable'
                     WHEN 2 THEN 'waiting_for_disk' WHEN 3 THEN 'downloading'
                     WHEN 4 THEN 'uploading' WHEN 5 THEN 'failed_permanent' ELSE 'uploaded' END,
       CASE n %% 100 WHEN 0 THEN 'failed_retryable' WHEN 2 THEN 'waiting_for_disk'
                     WHEN 3 THEN 'downloading' WHEN 5 THEN 'failed_permanent'
                     ELSE 'downloaded' END,
       'https://x/' || n, '/data/' || n || '.mp4', n %% 3,
       now() + make_interval(days => n %% 60), now() + interval '1 hour',
       'someone:' || n, now() + interval '1 hour', now() + interval '1 day'
FROM generate_series(%(first)s::int, %(last)s::int) AS n
"""

# The download claim before migration 0014, and the partial index it read.
OLD_INDEX = """
CREATE INDEX bench_download_ready_idx ON vods (priority DESC, expires_at ASC NULLS LAST, id)
    WHERE state IN ('queued', 'failed_retryable', 'waiting_for_disk', 'downloading')
"""
DROP_NEW = """
DROP INDEX vods_claim_download_retry_idx, vods_claim_disk_idx, vods_claim_downloading_idx
"""
OLD_CLAIM = """
UPDATE vods SET state = 'downloading', download_state = 'downloading', claimed_by = %(owner)s,
    claim_until = now() + make_interval(secs => %(lease_s)s), updated_at = now()
WHERE id = (
    SELECT id FROM vods
    WHERE state = 'queued'
       OR (state = 'failed_retryable' AND next_attempt_at <= now()
           AND download_state <> 'downloaded')
       OR (state = 'waiting_for_disk' AND updated_at <= now() - interval '1 minute')
       OR (state = 'downloading' AND claim_until < now())
    ORDER BY priority DESC, expires_at ASC NULLS LAST, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING id
"""


async def median_ms(call: Any, times: int = 50) -> float:
    """Median wall time of `call()` in ms."""
    samples = []
    for _ in range(times):
        begin = time.perf_counter()
        got = await call()
        samples.append((time.perf_counter() - begin) * 1000)
        assert got is None, "the bench data left something due"
    return statistics.median(samples)


async def idle_claims(store: UploadStore) -> dict[str, float]:
    """The idle download and upload claims' medians."""
    return {
        "download": await median_ms(lambda: store.download_claim(owner="bench", lease_s=60)),
        "upload": await median_ms(lambda: store.upload_claim(owner="bench", lease_s=60)),
    }


async def old_claim_ms(url: str) -> float:
    """The claim before 0014 over its partial index, idle, median of 50."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        # In a transaction rolled back: 0014's indexes out of the way, the old one in.
        await conn.execute(DROP_NEW)
        await conn.execute(OLD_INDEX)
        await conn.execute("ANALYZE vods")

        async def once() -> None:
            cur = await conn.execute(OLD_CLAIM, {"owner": "bench", "lease_s": 60})
            assert await cur.fetchone() is None

        ms = await median_ms(once)
        await conn.rollback()
        return ms


class _Stage:
    """Claims with the real statement; an attempt only notes when it claimed."""

    name = "download"

    def __init__(self, store: UploadStore) -> None:
        self._store = store
        self.claimed: asyncio.Queue[float] = asyncio.Queue()

    async def release_previous(self, *, prefix: str, owner: str) -> list[str]:
        return []

    async def next(self, token: str, lease_s: float) -> DownloadClaim | float:
        claim = await self._store.download_claim(owner=token, lease_s=lease_s)
        if claim is None:
            return idle_wait(POLL_S, await self._store.download_next_due())
        return claim

    async def heartbeat(self, claim: DownloadClaim, token: str, lease_s: float) -> bool:
        return True

    async def attempt(self, claim: DownloadClaim, token: str) -> bool | None:
        await self.claimed.put(time.perf_counter())
        return None

    async def interrupted(self, claim: DownloadClaim, token: str) -> None:
        return None

    async def stopped(self, claim: DownloadClaim, token: str) -> None:
        return None


class _Kv:
    async def kv_set(self, key: str, value: str, timeout_s: float = 2.0) -> None:
        return None


async def wake_latency_ms(url: str, store: UploadStore, rounds: int = 20) -> list[float]:
    """From a queued VOD's commit to its claim, `rounds` times, with the poll at 60 s."""
    stage = _Stage(store)
    workers = LeasedWorkers(stage, _Kv(), Owner(Path.cwd()), workers=2, lease_s=60)
    connected = asyncio.Event()
    wakeups = ClaimWakeups(url, {"download": workers.wake, "bench": connected.set})
    workers.heard = wakeups.listening
    tasks = [asyncio.create_task(wakeups.run_forever())]
    await connected.wait()
    tasks.append(asyncio.create_task(workers.run_forever()))
    samples = []
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for n in range(rounds):
                await asyncio.sleep(0.2)  # pacing only: the workers are idle again
                begin = time.perf_counter()
                await conn.execute(
                    "INSERT INTO vods (twitch_vod_id, channel, url) VALUES (%s, 'w', 'https://x')",
                    [f"wake{n}"],
                )
                async with asyncio.timeout(POLL_S / 2):
                    claimed = await stage.claimed.get()
                samples.append((claimed - begin) * 1000)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return samples


async def main(admin_url: str, large: int = LARGE) -> None:
    """Build both sizes in one database, in turn, and print the figures."""
    name, url = await admin_database(admin_url, "wakeups")
    try:
        await migrate(url)
        pool = psycopg_pool.AsyncConnectionPool(url, min_size=1, max_size=4, open=False)
        await pool.open()
        store = UploadStore(pool)
        found: dict[int, dict[str, float]] = {}
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            built = 0
            for size in (SMALL, large):
                begin = time.perf_counter()
                await conn.execute(FILL, {"first": built + 1, "last": size})
                await conn.execute("VACUUM ANALYZE vods")
                built = size
                took = time.perf_counter() - begin
                found[size] = await idle_claims(store)
                print(f"  {size:>9,} VODs (built in {took:.1f} s): idle download claim "
                      f"{found[size]['download']:.2f} ms, idle upload claim "
                      f"{found[size]['upload']:.2f} ms")  # fmt: skip
        for stage in ("download", "upload"):
            ratio = found[large][stage] / found[SMALL][stage]
            print(f"  idle {stage} claim, {large:,} / {SMALL:,} VODs: {ratio:.2f}x (goal: <= 2x)")
        old = await old_claim_ms(url)
        print(f"  the claim before migration 0014 at {large:,} VODs: {old:.2f} ms, "
              f"{old / found[large]['download']:.0f}x the claim now")  # fmt: skip
        samples = await wake_latency_ms(url, store)
        med = statistics.median(samples)
        print(f"  wake-up, commit to claim (median of {len(samples)}, max "
              f"{max(samples):.1f} ms): {med:.1f} ms with CLAIM_POLL_INTERVAL {POLL_S:g} s; "
              f"the former 5 s poll made a VOD wait 2,500 ms on average: "
              f"{2500 / med:.0f}x sooner")  # fmt: skip
        await pool.close()
    finally:
        await drop_db(admin_url, name)


async def _alone() -> None:
    logs.configure("warning", "text")
    large = int(sys.argv[1]) if len(sys.argv) > 1 else LARGE
    async with external_server() as admin_url:
        print("Idle claims and wake-ups:")
        await main(admin_url, large)


if __name__ == "__main__":
    asyncio.run(_alone())
