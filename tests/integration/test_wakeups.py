"""Workers wait for work: LISTEN/NOTIFY wake-ups, their reconnection, and O(1) idle claims.

The leased workers run over the real store and a real PostgreSQL with a 60 s fallback poll; a
VOD that becomes claimable must be claimed within seconds, so only a wake-up can do it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest

from vodarchiver.db.actions import ActionStore, Actor
from vodarchiver.db.queries import q
from vodarchiver.db.uploads import UploadStore
from vodarchiver.db.wakeups import ClaimWakeups
from vodarchiver.lifecycle import Action
from vodarchiver.models import DownloadResult, DownloadState, VodState, VodUpsert
from vodarchiver.pipeline.leased import LeasedWorkers, Owner, idle_wait

POLL_S = 60.0  # the fallback poll: far longer than any wait below
PICKUP_S = 5.0  # a wake-up must bring the claim within this


@dataclass
class Claimed:
    """What a recording stage's worker took."""

    row_id: int
    vod_id: str
    channel: str
    corr: str


class RecordingStage:
    """A stage over the real claim statements whose attempt only records what it claimed."""

    def __init__(self, name: str, store: UploadStore) -> None:
        self.name = name
        self._store = store
        self.claimed: asyncio.Queue[str] = asyncio.Queue()
        self.idle = 0
        self._idle_changed = asyncio.Condition()

    async def wait_idle(self, at_least: int) -> None:
        """Until the workers have found nothing `at_least` times in all."""
        async with self._idle_changed:
            await self._idle_changed.wait_for(lambda: self.idle >= at_least)

    async def release_previous(self, *, prefix: str, owner: str) -> list[str]:
        return []

    async def next(self, token: str, lease_s: float) -> Claimed | float:
        if self.name == "download":
            claim: Any = await self._store.download_claim(owner=token, lease_s=lease_s)
            due = None if claim else await self._store.download_next_due()
        else:
            claim = await self._store.upload_claim(owner=token, lease_s=lease_s)
            due = None if claim else await self._store.upload_next_due()
        if claim is None:
            async with self._idle_changed:
                self.idle += 1
                self._idle_changed.notify_all()
            return idle_wait(POLL_S, due)
        return Claimed(claim.row_id, claim.vod_id, claim.channel, claim.corr)

    async def heartbeat(self, claim: Claimed, token: str, lease_s: float) -> bool:
        return True

    async def attempt(self, claim: Claimed, token: str) -> bool | None:
        await self.claimed.put(claim.vod_id)
        return None

    async def interrupted(self, claim: Claimed, token: str) -> None:
        return None

    async def stopped(self, claim: Claimed, token: str) -> None:
        return None


class Kv:
    """The monitor's times go nowhere in these tests."""

    async def kv_set(self, key: str, value: str, timeout_s: float = 2.0) -> None:
        return None


@dataclass
class Running:
    """Workers of one stage and the wake-ups, running against the test database."""

    store: UploadStore
    stage: RecordingStage
    wakeups: ClaimWakeups
    connected: asyncio.Queue[None]
    db_url: str

    async def claimed_within(self, seconds: float) -> str:
        """The next VOD a worker claimed, within `seconds`."""
        async with asyncio.timeout(seconds):
            return await self.stage.claimed.get()

    async def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(query, list(params))
            return await cur.fetchall() if cur.description else []


WORKERS = 2


@pytest.fixture
async def run(db_url: str) -> AsyncIterator[Callable[[str], Awaitable[Running]]]:
    """Start the wake-ups, then a stage's workers once the LISTEN connection is up and they idle."""
    tasks: list[asyncio.Task[None]] = []
    pool = psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False)
    await pool.open()

    async def start(name: str) -> Running:
        store = UploadStore(pool)
        stage = RecordingStage(name, store)
        workers = LeasedWorkers(stage, Kv(), Owner(Path.cwd()), workers=WORKERS, lease_s=60)
        connected: asyncio.Queue[None] = asyncio.Queue()
        # Every (re)connection wakes every entry: the test's own entry says it connected.
        stages = {name: workers.wake, "test_probe": lambda: connected.put_nowait(None)}
        wakeups = ClaimWakeups(db_url, stages, keepalive_s=1.0)
        workers.heard = wakeups.listening
        tasks.append(asyncio.create_task(wakeups.run_forever()))
        async with asyncio.timeout(10):
            await connected.get()
        tasks.append(asyncio.create_task(workers.run_forever()))
        async with asyncio.timeout(10):
            await stage.wait_idle(WORKERS)
        return Running(store, stage, wakeups, connected, db_url)

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await pool.close()


def discovered(vod_id: str) -> VodUpsert:
    """A VOD as discovery writes it, ended (not live): queued."""
    now = datetime.now(UTC)
    return VodUpsert(
        id=vod_id, channel="alice", stream_id=None, title="A stream", description="",
        created_at=now - timedelta(hours=2), published_at=now - timedelta(hours=2),
        duration_s=3600, url=f"https://www.twitch.tv/videos/{vod_id}", thumbnail_url="",
        viewable="public", muted_segments=[], retention_days=7,
        expires_at=now + timedelta(days=7), live=False,
    )  # fmt: skip


async def test_a_discovered_vod_is_claimed_at_once_not_at_the_poll(
    run: Callable[[str], Awaitable[Running]],
) -> None:
    """A VOD discovery inserts wakes an idle download worker: claimed within seconds, poll 60 s."""
    r = await run("download")
    result = await r.store.vods_upsert([discovered("7001")])
    assert result["7001"][1] is VodState.QUEUED
    assert await r.claimed_within(PICKUP_S) == "7001"


@pytest.mark.parametrize(
    ("start_state", "action"),
    [("failed_retryable", Action.RETRY), ("canceled", Action.RESTORE)],
)
async def test_an_operator_action_wakes_the_download_workers(
    run: Callable[[str], Awaitable[Running]], start_state: str, action: Action
) -> None:
    """A retry of a VOD due in an hour, or a restore of a canceled one, is claimed within seconds."""
    r = await run("download")
    idle = r.stage.idle
    later = datetime.now(UTC) + timedelta(hours=1)
    await r.sql(
        "INSERT INTO vods (twitch_vod_id, channel, state, download_state, url, next_attempt_at) "
        "VALUES ('7002', 'alice', %s, 'failed_retryable', 'https://x/7002', %s)",
        start_state, later,
    )  # fmt: skip
    if start_state == "failed_retryable":  # its insert woke them: nothing due yet
        await r.stage.wait_idle(idle + WORKERS)
    done = await ActionStore(r.store).act("7002", action, Actor("cli"), now=datetime.now(UTC))
    assert done.record is not None, done
    assert await r.claimed_within(PICKUP_S) == "7002"


async def test_a_finished_download_wakes_the_upload_workers(
    run: Callable[[str], Awaitable[Running]],
) -> None:
    """The download's outcome `downloaded` is claimed by an idle upload worker within seconds."""
    r = await run("upload")
    await r.store.vods_upsert([discovered("7003")])
    claim = await r.store.download_claim(owner="elsewhere", lease_s=60)
    assert claim is not None
    assert claim.vod_id == "7003"
    finished = DownloadResult(VodState.DOWNLOADED, DownloadState.DOWNLOADED, 0,
                              file_path=Path("/data/7003.mp4"), file_size=1)  # fmt: skip
    assert await r.store.download_finish(claim.row_id, owner="elsewhere", result=finished)
    assert await r.claimed_within(PICKUP_S) == "7003"


async def test_a_killed_listen_connection_reconnects_and_work_still_flows(
    run: Callable[[str], Awaitable[Running]],
) -> None:
    """pg_terminate_backend on the LISTEN connection: it comes back and wakes the workers again."""
    r = await run("download")
    killed = await r.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'vodarchiver-wakeups' AND datname = current_database()"
    )
    assert killed == [(True,)]
    async with asyncio.timeout(15):
        await r.connected.get()  # reconnected, and every stage woken
    assert r.wakeups.listening()
    assert r.wakeups.connections == 2
    await r.stage.wait_idle(r.stage.idle + WORKERS)
    await r.store.vods_upsert([discovered("7004")])
    assert await r.claimed_within(PICKUP_S) == "7004"


# --- an idle claim reads a bounded number of pages ------------------------------------------------

FILL = """
INSERT INTO vods (twitch_vod_id, channel, state, download_state, url, file_path, priority,
                  expires_at, next_attempt_at, claimed_by, claim_until, updated_at)
SELECT 'f' || %(tag)s || n, 'ch' || (n %% 50),
       (ARRAY['uploaded', 'failed_retryable', 'waiting_for_disk', 'downloading', 'uploading',
              'failed_retryable', 'failed_permanent'])[1 + n %% 7],
       (ARRAY['downloaded', 'failed_retryable', 'waiting_for_disk', 'downloading', 'downloaded',
              'downloaded', 'failed_permanent'])[1 + n %% 7],
       'https://x/' || n, '/data/' || n || '.mp4', n %% 3,
       now() + make_interval(days => n %% 60), now() + interval '1 hour',
       'someone:' || n, now() + interval '1 hour', now() + interval '1 day'
FROM generate_series(1, %(n)s) AS n
"""


async def idle_claim_buffers(conn: psycopg.AsyncConnection[Any], name: str) -> int:
    """The pages (shared hit + read) the claim statement touches when nothing is due."""
    cur = psycopg.AsyncClientCursor(conn)
    query = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {q(name)}"
    await cur.execute(query, {"owner": "probe", "lease_s": 60})
    row = await cur.fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    top = plan[0]["Plan"]
    assert top.get("Actual Rows", 0) == 0, "the claim took a VOD: the data left one due"
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


@pytest.mark.timeout(120)
async def test_an_idle_claim_reads_as_many_pages_at_100k_vods_as_at_1k(db_url: str) -> None:
    """With nothing due, each claim touches about as many pages among 100k VODs as among 1k."""
    found: dict[int, dict[str, int]] = {}
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        total = 0
        for size in (1_000, 100_000):
            await conn.execute(FILL, {"tag": str(size), "n": size - total})
            total = size
            await conn.execute("ANALYZE vods")
            found[size] = {name: await idle_claim_buffers(conn, name)
                           for name in ("download_claim", "upload_claim")}  # fmt: skip
    for name in ("download_claim", "upload_claim"):
        small, large = found[1_000][name], found[100_000][name]
        assert large <= small + 12, (name, found)
        assert large < 60, (name, found)
