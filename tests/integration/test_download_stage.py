"""The download stage: claims, states, retries, disk guard and cancel, over a real PostgreSQL,
the real yt-dlp and ffmpeg, and the fake CDN."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest

from tests.conftest import ManualClock, make_open_dir
from tests.fakes.cdn import FakeCdn
from tests.fakes.server import LocalServer
from tests.integration.test_downloader import ytdlp_processes
from tests.media import HlsVod, make_hls
from tests.tmpfs import tmpfs
from vodarchiver.db.actions import Actor
from vodarchiver.db.uploads import UploadStore
from vodarchiver.lifecycle import Action
from vodarchiver.media.downloader import Downloader
from vodarchiver.media.ytdlp import Failure, Outcome
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.download import DownloadPolicy, DownloadStage
from vodarchiver.pipeline.operator import Operator


@dataclass
class Rig:
    """A stage over a fresh database, downloading from the fake CDN into its own DATA_DIR."""

    cdn: FakeCdn
    cdn_url: str
    vod: HlsVod
    store: UploadStore
    metrics: Metrics
    data_dir: Path
    db_url: str

    def stage(self, clock: ManualClock | None = None, **policy: Any) -> DownloadStage:
        """A stage with quick retries and the given policy changes (and clock)."""
        settings = {"workers": 1, "max_attempts": 3, "backoff_base_s": 60.0, "backoff_max_s": 3600.0,
                    "min_free_bytes": 0, "size_estimate_mbps": 8.0, **policy}  # fmt: skip
        downloader = Downloader(fragments=4, retries=2, retry_sleep=(0.05, 0.1))
        return DownloadStage(self.store, downloader, self.metrics, data_dir=self.data_dir,
                             policy=DownloadPolicy(**settings), clock=clock or ManualClock())  # fmt: skip

    async def add_vod(
        self, vod_id: str, *, name: str = "vod", days_left: float = 5, priority: int = 0
    ) -> None:
        """A queued VOD whose URL is the fake CDN's playlist."""
        url = f"{self.cdn_url}{self.cdn.add(name, self.vod)}"
        now = datetime.now(UTC)
        await self.sql(
            "INSERT INTO vods (twitch_vod_id, channel, title, state, url, duration_s, date, expires_at, priority) "
            "VALUES (%s, 'alice', 'A stream', 'queued', %s, %s, %s, %s, %s)",
            vod_id, url, round(self.vod.duration_s), now, now + timedelta(days=days_left), priority,
        )  # fmt: skip

    async def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """Run one statement on the test database."""
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(query, list(params))
            return await cur.fetchall() if cur.description else []

    async def row(self, vod_id: str, *columns: str) -> tuple[Any, ...]:
        """Some columns of one VOD."""
        rows = await self.sql(
            f"SELECT {', '.join(columns)} FROM vods WHERE twitch_vod_id = %s", vod_id
        )
        return rows[0]


@pytest.fixture(scope="module")
def vod() -> HlsVod:
    """A 2-minute HLS VOD (cached)."""
    return make_hls(120)


@pytest.fixture
async def rig(db_url: str, vod: HlsVod) -> AsyncIterator[Rig]:
    """The fake CDN on 127.0.0.1 and a store on a fresh database."""
    cdn = FakeCdn()
    data_dir = make_open_dir("downloads")
    async with (
        LocalServer(cdn) as server,
        psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as pool,
    ):
        yield Rig(cdn, server.url, vod, UploadStore(pool), Metrics("t"), data_dir, db_url)
    shutil.rmtree(data_dir, ignore_errors=True)


async def test_queued_vods_are_downloaded_in_queue_order(rig: Rig) -> None:
    """The VOD Twitch deletes first is downloaded first; each ends `downloaded` with its file, progress and average."""
    await rig.add_vod("later", days_left=50)
    await rig.add_vod("sooner", days_left=2)
    stage = rig.stage()
    first = await stage.run_once()
    assert first is not None
    assert first.vod_id == "sooner"
    state, download_state, path, size, progress, error = await rig.row(
        "sooner",
        "state",
        "download_state",
        "file_path",
        "file_size",
        "download_progress",
        "processing_error",
    )
    assert (state, download_state, error) == ("downloaded", "downloaded", None)
    assert Path(path) == rig.data_dir.resolve() / "alice" / "sooner" / "sooner.mp4"
    assert (await asyncio.to_thread(Path(path).stat)).st_size == size
    assert progress["percent"] == 100.0
    assert progress["fragment_count"] == rig.vod.segments
    assert (await stage.run_once() or first).vod_id == "later"
    assert await stage.run_once() is None
    avg = await rig.sql("SELECT value::float FROM kv WHERE key = 'avg_download_ms'")
    assert avg
    assert avg[0][0] > 0
    text = rig.metrics.render().decode()
    assert "vod_downloads_succeeded_total 2.0" in text
    assert "vod_downloads_started_total 2.0" in text


async def test_a_404_playlist_makes_the_vod_gone(rig: Rig) -> None:
    """The VOD's own URL answering 404 ends as `gone`, not as a failure to retry."""
    await rig.add_vod("v1")
    rig.cdn.fail("vod", "index.m3u8", 404, times=None)
    await rig.stage().run_once()
    assert await rig.row("v1", "state", "download_state", "download_attempts") == (
        "gone",
        "gone",
        0,
    )


async def test_failures_back_off_then_become_permanent(rig: Rig) -> None:
    """A fragment that never comes: failed_retryable with a growing backoff, then failed_permanent with the reason."""
    await rig.add_vod("v1")
    rig.cdn.fail("vod", rig.vod.segment_names()[5], 500, times=None)
    stage = rig.stage(max_attempts=3, backoff_base_s=60)
    before = datetime.now(UTC)
    await stage.run_once()
    state, attempts, next_at, error = await rig.row(
        "v1", "state", "download_attempts", "next_attempt_at", "processing_error"
    )
    assert (state, attempts) == ("failed_retryable", 1)
    assert timedelta(seconds=55) < next_at - before < timedelta(seconds=70)
    assert "fragment" in error.lower()
    assert await stage.run_once() is None  # not due yet
    await rig.sql("UPDATE vods SET next_attempt_at = now() WHERE twitch_vod_id = 'v1'")
    before = datetime.now(UTC)
    await stage.run_once()
    state, attempts, next_at = await rig.row("v1", "state", "download_attempts", "next_attempt_at")
    assert (state, attempts) == ("failed_retryable", 2)
    assert timedelta(seconds=115) < next_at - before < timedelta(seconds=130)
    await rig.sql("UPDATE vods SET next_attempt_at = now() WHERE twitch_vod_id = 'v1'")
    await stage.run_once()
    state, attempts, error, file_path = await rig.row(
        "v1", "state", "download_attempts", "processing_error", "file_path"
    )
    assert (state, attempts, file_path) == ("failed_permanent", 3, None)
    assert error.startswith("gave up after 3 attempts")


async def test_a_full_disk_waits_and_carries_on_when_space_returns(rig: Rig) -> None:
    """Without room the download does not start (waiting_for_disk, not a failure); with room it completes."""
    await rig.add_vod("v1")
    await rig.stage(min_free_bytes=2**62).run_once()
    assert await rig.row("v1", "state", "download_attempts") == ("waiting_for_disk", 0)
    assert rig.cdn.served() == 0
    assert await rig.stage().run_once() is None  # rechecked at most once a minute
    await rig.sql("UPDATE vods SET updated_at = now() - interval '2 minutes'")
    await rig.stage().run_once()
    assert await rig.row("v1", "state") == ("downloaded",)


async def test_cancel_stops_the_download_within_two_seconds(rig: Rig) -> None:
    """Cancelling a running download stops yt-dlp, removes its files, and records `canceled` without a failure."""
    await rig.add_vod("v1")
    rig.cdn.throttle_bps = 300_000
    started = rig.cdn.when_served(200_000)
    stage = rig.stage()
    running = asyncio.create_task(stage.run_once())
    await asyncio.wait_for(started.wait(), 30)
    directory = rig.data_dir.resolve() / "alice" / "v1"
    assert ytdlp_processes(directory)
    begin = time.monotonic()
    operator = Operator(rig.store, workers=[stage.workers])
    result = await operator.act("v1", Action.CANCEL, Actor("test"))
    await asyncio.wait_for(running, 2)
    assert time.monotonic() - begin < 2
    assert result.state == "downloading"
    assert ytdlp_processes(directory) == []
    assert not directory.exists()
    assert await rig.row("v1", "state", "download_state", "download_attempts") == (
        "canceled",
        "canceled",
        0,
    )
    assert (await operator.act("404", Action.CANCEL, Actor("test"))).found is False


async def test_a_cancel_from_elsewhere_stops_the_download_at_its_next_progress_write(
    rig: Rig,
) -> None:
    """A cancel recorded by another replica (only in the database) stops this one's download within a second or two."""
    await rig.add_vod("v1")
    rig.cdn.throttle_bps = 300_000
    started = rig.cdn.when_served(200_000)
    running = asyncio.create_task(rig.stage().run_once())
    await asyncio.wait_for(started.wait(), 30)
    other_replica = Operator(rig.store)  # knows nothing of this replica's workers
    canceled = await other_replica.act("v1", Action.CANCEL, Actor("test"))
    assert (canceled.state, canceled.channel) == ("downloading", "alice")
    await asyncio.wait_for(running, 5)
    assert await rig.row("v1", "state") == ("canceled",)
    assert ytdlp_processes(rig.data_dir.resolve() / "alice" / "v1") == []


async def test_a_failure_that_is_not_enospc_counts_even_on_a_nearly_full_disk(rig: Rig) -> None:
    """With under 256 MiB free, a fragment that never comes is a counted failure (then given up), never `waiting_for_disk`."""
    with tmpfs(64 * 2**20) as fs:
        small = dataclasses.replace(rig, data_dir=fs.path)
        await rig.add_vod("v1")
        rig.cdn.fail("vod", rig.vod.segment_names()[5], 500, times=None)
        stage = small.stage(max_attempts=2, size_estimate_mbps=0.1)
        await stage.run_once()
        assert fs.free() < 256 * 2**20
        state, attempts, error = await rig.row(
            "v1", "state", "download_attempts", "processing_error"
        )
        assert (state, attempts) == ("failed_retryable", 1)
        assert "disk" not in error
        await rig.sql("UPDATE vods SET next_attempt_at = now()")
        await stage.run_once()
        assert await rig.row("v1", "state", "download_attempts") == ("failed_permanent", 2)


async def test_a_real_enospc_midway_waits_for_disk_and_keeps_the_fragments(rig: Rig) -> None:
    """yt-dlp meeting a full disk (a tmpfs smaller than the VOD): `waiting_for_disk`, not counted, fragments kept for the resume."""
    with tmpfs(rig.vod.total_bytes // 2) as fs:
        small = dataclasses.replace(rig, data_dir=fs.path)
        await rig.add_vod("v1")
        await small.stage(size_estimate_mbps=0.01).run_once()
        state, attempts, error = await rig.row(
            "v1", "state", "download_attempts", "processing_error"
        )
        assert (state, attempts) == ("waiting_for_disk", 0)
        assert "disk is full" in error
        assert any((fs.path / "alice" / "v1").glob("v1.ts*"))


async def test_kept_fragments_are_released_when_the_disk_stays_full_past_the_setting(
    rig: Rig,
) -> None:
    """Fragments kept while waiting for disk go once the wait passes DISK_FULL_RELEASE_AFTER (the disk is no longer full); when space returns the VOD downloads from scratch."""
    clock = ManualClock()
    with tmpfs(rig.vod.total_bytes // 2) as fs:
        small = dataclasses.replace(rig, data_dir=fs.path)
        directory = fs.path / "alice" / "v1"
        await rig.add_vod("v1")
        await small.stage(clock, size_estimate_mbps=0.01).run_once()  # yt-dlp meets ENOSPC
        assert await rig.row("v1", "state", "download_attempts") == ("waiting_for_disk", 0)
        kept = sum(p.stat().st_size for p in directory.glob("v1.ts*"))
        assert kept > 0
        held_free = fs.free()

        async def recheck(minutes: float) -> tuple[Any, ...]:
            clock.at(minutes=minutes)
            await rig.sql("UPDATE vods SET updated_at = now() - interval '2 minutes'")
            await small.stage(clock, release_after_s=1800).run_once()  # 8 Mbps: no room
            return await rig.row("v1", "state", "download_attempts")

        assert await recheck(29) == ("waiting_for_disk", 0)
        assert sum(p.stat().st_size for p in directory.glob("v1.ts*")) == kept  # still kept
        assert await recheck(31) == ("waiting_for_disk", 0)
        assert not any(directory.glob("v1.ts*"))
        assert fs.free() >= held_free + kept  # the filesystem is no longer held full
        fs.resize(512 * 2**20)  # space returns
        served = len(rig.cdn.requests)
        assert await recheck(32) == ("downloaded", 0)
        first = rig.vod.segment_names()[0]
        assert any(path.endswith(first) for path, _ in rig.cdn.requests[served:])  # from scratch


async def test_a_download_that_got_further_before_the_disk_filled_again_waits_afresh(
    rig: Rig,
) -> None:
    """The wait counts from the last progress: an attempt that fetched more before meeting ENOSPC again keeps its fragments."""
    clock = ManualClock()
    with tmpfs(rig.vod.total_bytes // 3) as fs:
        small = dataclasses.replace(rig, data_dir=fs.path)
        directory = fs.path / "alice" / "v1"
        await rig.add_vod("v1")
        await small.stage(clock, size_estimate_mbps=0.01).run_once()  # ENOSPC at a third
        first = sum(p.stat().st_size for p in directory.glob("v1.ts*"))
        fs.resize(rig.vod.total_bytes * 2 // 3)  # some space returns, not enough
        clock.at(minutes=40)
        await rig.sql("UPDATE vods SET updated_at = now() - interval '2 minutes'")
        await small.stage(clock, size_estimate_mbps=0.01, release_after_s=1800).run_once()
        assert await rig.row("v1", "state", "download_attempts") == ("waiting_for_disk", 0)
        assert sum(p.stat().st_size for p in directory.glob("v1.ts*")) > first  # kept, and more


async def test_enospc_from_the_filesystem_itself_waits_for_disk(rig: Rig) -> None:
    """ENOSPC raised in our own code (no inode left for the VOD's folder) is a full disk too, not a counted failure."""
    with tmpfs(512 * 2**20, inodes=1) as fs:  # plenty of bytes free, no inode
        small = dataclasses.replace(rig, data_dir=fs.path)
        await rig.add_vod("v1")
        await small.stage(size_estimate_mbps=0.01).run_once()
        state, attempts, error = await rig.row(
            "v1", "state", "download_attempts", "processing_error"
        )
        assert (state, attempts) == ("waiting_for_disk", 0)
        assert "No space left on device" in error
        assert rig.cdn.served() == 0


def test_failures_are_decided_by_their_kind() -> None:
    """Gone, restricted and disk failures do not count as failed attempts; others back off, then give up."""
    stage = DownloadStage(None, None, Metrics("t"), data_dir=Path("unused"),  # type: ignore[arg-type]
                          policy=DownloadPolicy(1, 3, 60, 3600, 0, 8))  # fmt: skip
    assert stage.decide(0, Failure(Outcome.GONE, "404")).state == "gone"
    assert stage.decide(0, Failure(Outcome.RESTRICTED, "subs")).state == "skipped_restricted"
    disk = stage.decide(0, Failure(Outcome.NO_DISK, "full"))
    assert (disk.state, disk.failed) == ("waiting_for_disk", 0)
    retry = stage.decide(0, Failure(Outcome.RETRY, "503"))
    assert (retry.state, retry.failed) == ("failed_retryable", 1)
    assert stage.decide(2, Failure(Outcome.RETRY, "503")).state == "failed_permanent"


async def test_a_lost_lease_stops_the_download_and_keeps_the_files(rig: Rig) -> None:
    """When another worker takes the VOD over, this one stops at its next write and leaves the fragments for it."""
    await rig.add_vod("v1")
    rig.cdn.throttle_bps = 300_000
    started = rig.cdn.when_served(200_000)
    running = asyncio.create_task(rig.stage().run_once())
    await asyncio.wait_for(started.wait(), 30)
    await rig.sql("UPDATE vods SET claimed_by = 'another-replica' WHERE twitch_vod_id = 'v1'")
    await asyncio.wait_for(running, 5)
    directory = rig.data_dir.resolve() / "alice" / "v1"
    assert ytdlp_processes(directory) == []
    assert any(directory.glob("v1.ts*"))  # kept for the new owner to resume
    assert await rig.row("v1", "state", "claimed_by") == ("downloading", "another-replica")


async def test_an_unexpected_error_is_a_counted_attempt_not_a_crash(rig: Rig) -> None:
    """A filesystem surprise (the channel folder is a file) fails the attempt with the reason; the worker lives on."""
    await rig.add_vod("v1")
    (rig.data_dir / "alice").write_text("not a folder")
    await rig.stage().run_once()
    state, attempts, error = await rig.row("v1", "state", "download_attempts", "processing_error")
    assert (state, attempts) == ("failed_retryable", 1)
    assert "NotADirectoryError" in error or "FileExistsError" in error
