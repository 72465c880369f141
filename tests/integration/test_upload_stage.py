"""The upload stage against a real PostgreSQL and the fake Google (OAuth + YouTube) over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import psycopg_pool
import pytest
from starlette.types import Receive, Scope, Send

from tests.conftest import ManualClock, logged
from tests.fakes.server import LocalServer
from tests.fakes.youtube import FakeGoogle
from tests.media import make_long_mp4
from vodarchiver.db.retention_store import RetentionStore
from vodarchiver.db.uploads import UploadStore
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.publish import Publisher, PublishPolicy
from vodarchiver.pipeline.quota import QuotaPlan, parse_budgets, parse_costs
from vodarchiver.pipeline.retention import Sweeper
from vodarchiver.pipeline.retention_rules import RetentionPolicy
from vodarchiver.pipeline.upload import UploadPolicy, UploadStage
from vodarchiver.pipeline.upload_shared import CircuitCheck
from vodarchiver.values import Secret
from vodarchiver.youtube.client import YouTubeClient
from vodarchiver.youtube.crypto import TokenCipher
from vodarchiver.youtube.oauth import CHANNEL, PROVIDER, GoogleAuth, store_refresh_token

KEY = os.urandom(32)
# 20:00 UTC on a November Monday is 12:00 in Los Angeles (PST): the next reset is 08:00 UTC.
START = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
NEXT_PACIFIC_MIDNIGHT = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


@dataclass
class Rig:
    """Everything a test drives: the fake, the store, the stage and how it was built."""

    fake: FakeGoogle
    store: UploadStore
    stage: UploadStage
    auth: GoogleAuth
    metrics: Metrics
    clock: ManualClock
    data_dir: Path
    db_url: str
    http: httpx.AsyncClient
    base: str

    async def add_vod(self, vod_id: str, data: bytes | Path, *, duration_s: int = 60,
                      channel: str = "alice", title: str = "A stream") -> Path:  # fmt: skip
        """A downloaded VOD with its file under DATA_DIR/<channel>/<id>/."""
        directory = self.data_dir / channel / vod_id
        directory.mkdir(parents=True)
        path = directory / f"{vod_id}.mp4"
        if isinstance(data, Path):
            shutil.copyfile(data, path)
        else:
            path.write_bytes(data)
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, title, state, download_state, date,"
                " duration_s, url, file_path, file_size, muted_segments) VALUES (%s, %s, %s,"
                " 'downloaded', 'downloaded', %s, %s, %s, %s, %s, '[{\"offset\": 5, "
                "\"duration\": 10}]')",
                (vod_id, channel, title, START - timedelta(days=1), duration_s,
                 f"https://www.twitch.tv/videos/{vod_id}", str(path), path.stat().st_size),
            )  # fmt: skip
        return path

    async def vod(self, vod_id: str) -> dict[str, Any]:
        """The VOD's row."""
        row = await self.store.vod_get(vod_id)
        assert row is not None
        return row

    async def drain(self, limit: int = 100) -> None:
        """Run the stage until nothing is left to claim (or `limit` passes)."""
        for _ in range(limit):
            wait = await self.stage.run_once()
            if wait > 0:
                return
        raise AssertionError("the stage never ran out of work")


def build_stage(
    store: UploadStore, http: httpx.AsyncClient, base: str, data_dir: Path, clock: ManualClock,
    *, policy: dict[str, Any] | None = None, budgets: str = "default=10000,uploads=100",
    costs: str = "videos.insert=uploads:1", lease_s: float = 60.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    chunk_size: int = 256 * 1024, chunk_retries: int = 6,
) -> tuple[UploadStage, GoogleAuth, Metrics]:  # fmt: skip
    """The stage as app.build_uploads makes it, with test-sized chunks and waits."""
    metrics = Metrics("test")
    auth = GoogleAuth(http, store, TokenCipher(KEY), metrics, token_url=f"{base}/token",
                      client_id="fake-google-client-id",
                      client_secret=Secret("fake-google-client-secret"),
                      bootstrap_token=Secret("fake-google-refresh-token"), clock=clock)  # fmt: skip
    client = YouTubeClient(http, auth, api_url=base)
    quota = QuotaPlan(parse_budgets(budgets), parse_costs(costs))
    publisher = Publisher(store, client, quota, metrics, PublishPolicy(
        chunk_size=chunk_size, chunk_retries=chunk_retries, retry_base_s=0.01, retry_cap_s=0.05,
        marker_pages=20, category_id="20", privacy="private"), clock=clock,
        sleep=sleep)  # fmt: skip
    settings: dict[str, Any] = {
        "workers": 1, "max_attempts": 5, "backoff_base_s": 0.0, "backoff_max_s": 0.0,
        "circuit_threshold": 3, "circuit_cooldown": timedelta(minutes=15),
        "upload_limit_cooldown": timedelta(hours=6),
        "max_part_duration_s": 11 * 3600 + 55 * 60, "max_part_bytes": 256 * 2**30,
        "title_template": "{title} - {channel} {date}",
        "description_template": "{title}\nStreamed {date}. {url}", "tags": ("archive",),
        "playlists": {},
        # RETENTION_KEEP_DAYS=0: retention removes a VOD's files once it is published.
        "after_upload": Sweeper(RetentionStore(store.pool), RetentionPolicy(0, None, None),
                                data_dir=data_dir, interval_s=60).after_upload,
    }  # fmt: skip
    settings.update(policy or {})
    stage = UploadStage(store, publisher, auth, quota, metrics, data_dir=data_dir,
                        policy=UploadPolicy(**settings), clock=clock, lease_s=lease_s)  # fmt: skip
    return stage, auth, metrics


@pytest.fixture
async def rig(db_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """A stage over a fresh database, talking to a fresh fake Google."""
    fake = FakeGoogle()
    server = await LocalServer(fake).start()
    pool = psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False)
    await pool.open()
    http = httpx.AsyncClient(timeout=10)
    store = UploadStore(pool)
    clock = ManualClock(START)
    stage, auth, metrics = build_stage(store, http, server.url, tmp_path, clock)
    await auth.bootstrap()
    try:
        yield Rig(fake, store, stage, auth, metrics, clock, tmp_path, db_url, http, server.url)
    finally:
        await http.aclose()
        await pool.close()
        await server.stop()


def rebuild(rig: Rig, **kwargs: Any) -> Rig:
    """The same rig with a stage built differently (policy, quota, chunk size)."""
    stage, auth, metrics = build_stage(rig.store, rig.http, rig.base, rig.data_dir, rig.clock,
                                       **kwargs)  # fmt: skip
    return replace(rig, stage=stage, auth=auth, metrics=metrics)


def sha(path_or_bytes: bytes) -> str:
    """sha256 hex of some bytes."""
    return hashlib.sha256(path_or_bytes).hexdigest()


def payload(n: int, size: int) -> bytes:
    """Distinct bytes for VOD number `n`."""
    return hashlib.sha256(str(n).encode()).digest() * (size // 32) + os.urandom(size % 32)


# --- exactly once, byte for byte --------------------------------------------------------------


async def test_twenty_vods_become_twenty_videos_each_once_and_byte_identical(rig: Rig) -> None:
    """Every VOD is published once, its bytes intact, processed=1, its file deleted after."""
    files = {}
    for n in range(20):
        vod_id = str(1000 + n)
        files[vod_id] = payload(n, 300_000 + n * 40_000)  # 1 or 2 chunks, unaligned ends
        await rig.add_vod(vod_id, files[vod_id])
    await rig.drain()
    videos = rig.fake.uploaded()
    assert len(videos) == 20
    by_marker = {}
    for video in videos:
        marker = video.snippet["description"].rsplit("\n", 1)[-1]
        assert marker not in by_marker, "a VOD was published twice"
        by_marker[marker] = video
    for vod_id, data in files.items():
        video = by_marker[f"[vodarchiver vod={vod_id} part=1/1]"]
        assert video.sha256 == sha(data)
        assert video.size == len(data)
        row = await rig.vod(vod_id)
        assert row["state"] == "uploaded"
        assert row["processed"] == 1
        assert row["youtube_url"] == f"https://www.youtube.com/watch?v={video.id}"
        assert row["file_path"] is None
        assert not (rig.data_dir / "alice" / vod_id).exists()
    kv = await rig.store.kv_get_many(["avg_upload_ms", "avg_total_ms", "last_process_run"])
    assert float(kv["avg_upload_ms"]) > 0
    assert float(kv["avg_total_ms"]) > 0
    assert rig.metrics.uploads_succeeded._value.get() == 20
    assert rig.fake.bytes_received == sum(len(d) for d in files.values())


async def test_failed_and_cut_chunks_resume_from_what_youtube_holds(rig: Rig) -> None:
    """Three 503s and a connection cut mid-chunk: one video, intact, far fewer bytes than twice."""
    data = payload(1, 8 * 256 * 1024 + 12_345)
    await rig.add_vod("2001", data)
    rig.fake.fail_chunks(3)
    rig.fake.cut_next_chunk(100_000 + 256 * 1024)
    await rig.drain()
    [video] = rig.fake.uploaded()
    assert video.sha256 == sha(data)
    assert (await rig.vod("2001"))["state"] == "uploaded"
    assert rig.fake.bytes_received < 1.6 * len(data)
    assert rig.metrics.upload_chunk_retries._value.get() == 4


async def test_a_lost_final_answer_is_recovered_from_the_session(rig: Rig) -> None:
    """YouTube stored the video but the 200 never arrived: the status query adopts it."""
    data = payload(2, 3 * 256 * 1024)
    await rig.add_vod("2002", data)
    rig.fake.complete_but_fail_response_next(cut=True)
    await rig.drain()
    [video] = rig.fake.uploaded()
    assert video.sha256 == sha(data)
    row = await rig.vod("2002")
    assert row["youtube_url"].endswith(video.id)


async def test_an_expired_session_is_replaced_only_after_the_marker_search(rig: Rig) -> None:
    """A session that expired after YouTube stored the video: found by marker, not re-uploaded."""
    data = payload(3, 2 * 256 * 1024 + 7)
    await rig.add_vod("2003", data)
    rig.fake.complete_but_fail_response_next(cut=True)
    no_retries = rebuild(rig, chunk_retries=0)
    await no_retries.stage.run_once()  # the lost answer ends the attempt; YouTube has the video
    assert (await rig.vod("2003"))["state"] == "failed_retryable"
    rig.fake.expire_sessions()
    await rig.drain()
    videos = rig.fake.uploaded()
    assert len(videos) == 1
    row = await rig.vod("2003")
    assert row["state"] == "uploaded"
    assert row["youtube_url"].endswith(videos[0].id)
    parts = await rig.store.vod_uploads("2003")
    assert parts[0]["adopted"] is True
    assert rig.fake.count("insert") == 1


# --- quota, limits, credentials ---------------------------------------------------------------


async def test_quota_exceeded_parks_uploads_until_the_next_pacific_midnight(rig: Rig) -> None:
    """quotaExceeded: not a failure; nothing is claimed until midnight in Los Angeles."""
    await rig.add_vod("3001", payload(1, 300_000))
    await rig.add_vod("3002", payload(2, 300_000))
    rig.fake.answer_next("insert", "quotaExceeded")
    await rig.stage.run_once()
    row = await rig.vod("3001")
    assert row["state"] == "downloaded"
    assert row["upload_attempts"] == 0
    status = await rig.stage.status()
    assert status["paused_reason"] == "quota"
    assert status["resume_at"] == NEXT_PACIFIC_MIDNIGHT.isoformat()
    assert status["quota"]["uploads"]["remaining"] == 0
    requests_before = len(rig.fake.requests)
    rig.clock.now = NEXT_PACIFIC_MIDNIGHT - timedelta(seconds=1)
    assert await rig.stage.run_once() > 0
    assert len(rig.fake.requests) == requests_before, "a parked stage must not call YouTube"
    rig.clock.now = NEXT_PACIFIC_MIDNIGHT
    await rig.drain()
    assert len(rig.fake.uploaded()) == 2
    assert (await rig.vod("3002"))["state"] == "uploaded"


async def test_the_planner_never_makes_a_call_it_cannot_afford(rig: Rig) -> None:
    """Google's old rule (1,600 of 10,000 units): six uploads, then a pause without a 7th call."""
    old_rule = rebuild(rig, budgets="default=10000", costs="")
    for n in range(8):
        await old_rule.add_vod(str(3100 + n), payload(n, 300_000))
    await old_rule.drain()
    assert rig.fake.count("insert") == 6
    assert len(rig.fake.uploaded()) == 6
    status = await old_rule.stage.status()
    assert status["paused_reason"] == "quota"
    assert status["quota"]["default"]["used"] == 6 * 1600 + 6  # six inserts, six status checks
    assert old_rule.metrics.youtube_quota_remaining.labels(bucket="default")._value.get() < 1600


async def test_upload_limit_exceeded_pauses_for_the_cooldown(rig: Rig) -> None:
    """uploadLimitExceeded parks uploads for UPLOAD_LIMIT_COOLDOWN, then they go on."""
    await rig.add_vod("3201", payload(1, 300_000))
    rig.fake.answer_next("insert", "uploadLimitExceeded")
    await rig.stage.run_once()
    status = await rig.stage.status()
    assert status["paused_reason"] == "upload_limit"
    assert status["resume_at"] == (START + timedelta(hours=6)).isoformat()
    rig.clock.now = START + timedelta(hours=6)
    await rig.drain()
    assert (await rig.vod("3201"))["state"] == "uploaded"


async def test_invalid_grant_waits_for_a_new_token_without_a_restart(rig: Rig) -> None:
    """Revoked token: waiting_for_auth, a failing readiness check; a new token resumes."""
    await rig.add_vod("3301", payload(1, 300_000))
    await rig.add_vod("3302", payload(2, 300_000))
    rig.fake.revoke("fake-google-refresh-token")
    await rig.stage.run_once()
    assert (await rig.vod("3301"))["state"] == "waiting_for_auth"
    assert (await rig.vod("3302"))["state"] == "waiting_for_auth"
    check = await rig.auth.check()
    assert not check.ok
    assert "invalid_grant" in check.detail
    assert rig.metrics.youtube_auth_waiting._value.get() == 1
    assert await rig.stage.run_once() > 0  # still waiting: nothing claimed, Google not asked
    refreshes = rig.fake.refreshes
    await rig.stage.run_once()
    assert rig.fake.refreshes == refreshes
    rig.fake.add_refresh_token("a-new-refresh-token")
    await store_refresh_token(rig.store, TokenCipher(KEY), "a-new-refresh-token", bootstrap=False)
    await rig.drain()
    assert (await rig.vod("3301"))["state"] == "uploaded"
    assert (await rig.vod("3302"))["state"] == "uploaded"
    assert (await rig.auth.check()).ok


async def test_a_rotated_refresh_token_replaces_the_old_one_sealed(rig: Rig) -> None:
    """Google's new refresh token is stored (encrypted) as a new generation and used next."""
    rig.fake.rotate_refresh_token_next("rotated-refresh-token")
    await rig.add_vod("3401", payload(1, 300_000))
    await rig.drain()
    row = await rig.store.token_get(PROVIDER, CHANNEL)
    assert row is not None
    assert row.sealed is not None
    assert row.generation == 2
    assert b"rotated-refresh-token" not in row.sealed
    opened = TokenCipher(KEY).open(row.sealed, row.scheme, provider=PROVIDER, channel=CHANNEL)
    assert b"rotated-refresh-token" in opened
    rig.fake.expire_access_tokens()
    rig.clock.now = START + timedelta(hours=2)  # the stored access token is stale too
    await rig.add_vod("3402", payload(2, 300_000))
    await rig.drain()
    assert (await rig.vod("3402"))["state"] == "uploaded"


# --- failures, the breaker, rejections --------------------------------------------------------


async def test_the_breaker_opens_after_consecutive_failures_and_a_probe_closes_it(
    rig: Rig, log_lines: io.StringIO
) -> None:
    """Three failed uploads open it (`circuit opened`); after the cooldown one probe goes."""
    flaky = rebuild(rig, chunk_retries=0, policy={"circuit_threshold": 3})
    for n in range(4):
        await flaky.add_vod(str(3500 + n), payload(n, 300_000))
    rig.fake.fail_chunks(3)
    for _ in range(3):
        assert await flaky.stage.run_once() == 0
    kv = await rig.store.kv_get_many(["circuit_state", "circuit_failures"])
    assert kv == {"circuit_state": "open", "circuit_failures": "3"}
    assert len(logged(log_lines, "circuit opened")) == 1
    assert flaky.metrics.circuit_open._value.get() == 1
    assert not (await CircuitCheck(rig.store).check()).ok
    assert await flaky.stage.run_once() > 0  # open: nothing is claimed
    assert (await rig.vod("3503"))["state"] == "downloaded"
    rig.clock.now = START + timedelta(minutes=15)
    await flaky.drain()
    assert len(rig.fake.uploaded()) == 4
    kv = await rig.store.kv_get_many(["circuit_state", "circuit_failures"])
    assert kv == {"circuit_state": "closed", "circuit_failures": "0"}


async def test_deleting_the_breaker_keys_closes_it(rig: Rig) -> None:
    """The runbook's recovery: DELETE FROM kv WHERE key IN (the three keys)."""
    await rig.store.kv_set_many({"circuit_state": "open", "circuit_failures": "9",
                                 "circuit_open_until": (START + timedelta(days=1)).isoformat()})  # fmt: skip
    await rig.add_vod("3601", payload(1, 300_000))
    assert await rig.stage.run_once() > 0
    async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM kv WHERE key IN "
                           "('circuit_state','circuit_failures','circuit_open_until')")  # fmt: skip
    await rig.drain()
    assert (await rig.vod("3601"))["state"] == "uploaded"


async def test_a_rejected_video_is_recorded_with_its_reason(rig: Rig) -> None:
    """videos.list says rejected: failed_permanent, the reason on the VOD and in /status."""
    await rig.add_vod("3701", payload(1, 300_000))
    rig.fake.reject_next_upload("duplicate")
    await rig.drain()
    row = await rig.vod("3701")
    assert row["state"] == "failed_permanent"
    assert "rejected" in row["processing_error"]
    assert "duplicate" in row["processing_error"]
    status = await rig.stage.status()
    assert status["rejected"][0]["twitch_vod_id"] == "3701"
    assert status["rejected"][0]["status_reason"] == "duplicate"
    assert len(rig.fake.uploaded()) == 1  # never uploaded again


async def test_a_file_that_changed_mid_upload_fails_the_vod_with_its_reason(rig: Rig) -> None:
    """The session belongs to the old bytes: a replaced file is failed_permanent, not mixed in."""
    path = await rig.add_vod("3801", payload(1, 4 * 256 * 1024))
    rig.fake.cut_next_chunk(10)
    no_retries = rebuild(rig, chunk_retries=0)
    await no_retries.stage.run_once()
    assert (await rig.vod("3801"))["state"] == "failed_retryable"
    path.write_bytes(payload(2, 4 * 256 * 1024))
    await rig.stage.run_once()
    row = await rig.vod("3801")
    assert row["state"] == "failed_permanent"
    assert "changed since its upload was planned" in row["processing_error"]
    assert rig.fake.uploaded() == []


# --- long VODs and playlists ------------------------------------------------------------------


async def test_a_13_hour_vod_is_split_into_two_parts_with_their_titles(rig: Rig) -> None:
    """Longer than 11h55m: two parts by stream copy, `(Part n/2)`, both published, both intact."""
    source = make_long_mp4(13 * 3600)
    await rig.add_vod("3901", source, duration_s=13 * 3600, title="Marathon")
    playlists = rebuild(rig, policy={"playlists": {"alice": "PLmarathon"}})
    rig.fake.add_playlist("PLmarathon")
    await playlists.drain()
    videos = rig.fake.uploaded()
    assert [v.title for v in videos] == [
        "Marathon - alice 2026-11-22 (Part 1/2)", "Marathon - alice 2026-11-22 (Part 2/2)"]  # fmt: skip
    parts = await rig.store.vod_uploads("3901")
    assert [p["video_id"] for p in parts] == [v.id for v in videos]
    assert all(p["file_size"] == v.size for p, v in zip(parts, videos, strict=True))
    row = await rig.vod("3901")
    assert row["state"] == "uploaded"
    assert row["youtube_url"].endswith(videos[0].id)
    assert rig.fake.playlist("PLmarathon") == [v.id for v in videos]
    assert "[vodarchiver vod=3901 part=2/2]" in videos[1].description


async def test_a_worker_whose_lease_was_taken_over_stops_and_keeps_running(
    rig: Rig, log_lines: io.StringIO
) -> None:
    """Another owner in `claimed_by`: the heartbeat notices, the attempt stops, the worker lives."""
    await rig.add_vod("4001", payload(1, 4 * 256 * 1024))
    rig.fake.fail_chunks(1000)  # the upload keeps retrying until it is stopped
    retrying = asyncio.Event()

    async def backoff(seconds: float) -> None:
        retrying.set()  # a chunk failed: the upload is under way
        await asyncio.sleep(seconds)

    slow = rebuild(rig, chunk_retries=1000, lease_s=0.3, sleep=backoff)
    attempt = asyncio.create_task(slow.stage.run_once())
    await asyncio.wait_for(retrying.wait(), 10)
    async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE vods SET claimed_by = 'another-replica' WHERE twitch_vod_id = '4001'"
        )
    assert await asyncio.wait_for(attempt, 10) == 0.0  # returned normally, not cancelled
    assert len(logged(log_lines, "upload_taken_over")) == 1
    row = await rig.vod("4001")
    assert row["state"] == "uploading"  # untouched: the other owner's to finish
    assert rig.fake.uploaded() == []


async def test_a_worker_that_lost_its_claim_opens_no_session(rig: Rig) -> None:
    """Right before a new session, the claim is checked: a stale worker starts no second upload."""
    await rig.add_vod("4101", payload(1, 4 * 256 * 1024))
    rig.fake.fail_chunks(1)
    no_retries = rebuild(rig, chunk_retries=0)
    await no_retries.stage.run_once()  # a session is opened, its first chunk fails
    assert (await rig.vod("4101"))["state"] == "failed_retryable"
    rig.fake.expire_sessions()

    async def steal_during_search(scope: Scope, receive: Receive, send: Send) -> None:
        """Another replica takes the VOD over while this one looks for its marker."""
        if scope["type"] == "http" and scope["path"] == "/youtube/v3/channels":
            async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as c:
                await c.execute("UPDATE vods SET claimed_by = 'another-replica' "
                                "WHERE twitch_vod_id = '4101'")  # fmt: skip
        await rig.fake(scope, receive, send)

    async with LocalServer(steal_during_search) as stealing:
        stage, _, _ = build_stage(rig.store, rig.http, stealing.url, rig.data_dir, rig.clock)
        await stage.run_once()
    assert rig.fake.count("channels.list") == 1  # the search ran, and the claim was lost in it
    assert rig.fake.count("insert") == 1  # no second session
    row = await rig.vod("4101")
    assert row["state"] == "uploading"  # left to its new owner
