"""The retention sweeper on a real PostgreSQL and a real DATA_DIR: what it removes and what it never touches."""

from __future__ import annotations

import fcntl
import io
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest

from tests.conftest import ManualClock
from vodarchiver.config import load_settings
from vodarchiver.db.retention_store import RetentionStore
from vodarchiver.pipeline.retention import Sweeper
from vodarchiver.pipeline.retention_rules import RetentionPolicy
from vodarchiver.retention_command import retention

STILL_NEEDED = ("queued", "waiting_for_disk", "downloading", "downloaded", "waiting_for_auth",
                "uploading", "failed_retryable", "live")  # fmt: skip


@dataclass
class Rig:
    """A data dir, a fresh database and a clock."""

    data_dir: Path
    db_url: str
    store: RetentionStore
    clock: ManualClock

    def sweeper(self, keep: float | None = 0, max_gb: float | None = None,
                failed: float | None = 30) -> Sweeper:  # fmt: skip
        """A sweeper with these rules over the rig."""
        max_bytes = int(max_gb * 2**30) if max_gb is not None else None
        return Sweeper(self.store, RetentionPolicy(keep, max_bytes, failed),
                       data_dir=self.data_dir, interval_s=60, clock=self.clock)  # fmt: skip

    async def vod(self, vod_id: str, state: str, *, files: int = 1, **cols: Any) -> Path:
        """A VOD row in `state` with `files` fragment files of 1 KiB in DATA_DIR/alice/<id>."""
        directory = self.data_dir / "alice" / vod_id
        directory.mkdir(parents=True)
        for n in range(files):
            (directory / f"frag{n}.ts").write_bytes(os.urandom(1024))
        names = ["twitch_vod_id", "channel", "state", "file_path", *cols]
        values = [vod_id, "alice", state, str(directory / "frag0.ts"), *cols.values()]
        marks = ", ".join(["%s"] * len(values))
        await self.sql(f"INSERT INTO vods ({', '.join(names)}) VALUES ({marks})", *values)
        return directory

    async def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """One statement in its own transaction."""
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(statement, params)
            return await cur.fetchall() if cur.description else []


@pytest.fixture
async def rig(db_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """A store over a fresh database, DATA_DIR in a temporary directory."""
    pool = psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False)
    await pool.open()
    try:
        yield Rig(tmp_path, db_url, RetentionStore(pool), ManualClock(datetime.now(UTC)))
    finally:
        await pool.close()


def age(path: Path, hours: float) -> None:
    """Make everything under `path` look last modified `hours` ago."""
    when = time.time() - hours * 3600
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.utime(os.path.join(root, name), (when, when))
    os.utime(path, (when, when))


async def test_files_left_by_a_kill_after_the_uploaded_commit_are_removed(rig: Rig) -> None:
    """A VOD committed `uploaded` whose files a killed daemon never deleted: the next sweep removes them and clears file_path."""
    directory = await rig.vod("1001", "uploading", files=3)
    await rig.sql("UPDATE vods SET state = 'uploaded', processed = 1, uploaded_at = now()")
    removed = await rig.sweeper(keep=0).sweep_once()
    assert [r.dir.vod_id for r in removed] == ["1001"]
    assert removed[0].dir.size == 3 * 1024
    assert not directory.exists()
    assert await rig.sql("SELECT file_path FROM vods") == [(None,)]


@pytest.mark.parametrize("state", STILL_NEEDED)
async def test_a_vod_still_needed_is_never_touched(rig: Rig, state: str) -> None:
    """Whatever the rules (keep 0 days, a 1-byte cap, failed 0 days) and however old, a needed VOD keeps its files."""
    directory = await rig.vod("2001", state, files=2)
    age(directory, 24 * 400)
    rig.clock.now += timedelta(days=400)
    sweeper = rig.sweeper(keep=0, max_gb=1e-9, failed=0)
    plan, total = await sweeper.plan()
    assert plan == []
    assert total == 2048
    assert await sweeper.sweep_once() == []
    assert sorted(p.name for p in directory.iterdir()) == ["frag0.ts", "frag1.ts"]


async def test_failed_vods_go_after_failed_days_counted_from_the_state_change(rig: Rig) -> None:
    """A canceled VOD is kept 30 days after it was canceled, then removed; discovery touching updated_at does not reset that."""
    directory = await rig.vod("3001", "downloading")
    await rig.sql("UPDATE vods SET state = 'canceled'")
    sweeper = rig.sweeper(failed=30)
    rig.clock.now += timedelta(days=29)
    await rig.sql("UPDATE vods SET updated_at = now() + interval '29 days'")  # a discovery pass
    assert await sweeper.sweep_once() == []
    rig.clock.now += timedelta(days=2)
    assert [r.reason for r in await sweeper.sweep_once()] == ["canceled for more than 30 days"]
    assert not directory.exists()


async def test_max_gb_removes_the_oldest_uploads_first(rig: Rig) -> None:
    """Over RETENTION_MAX_GB the oldest upload goes; the newer one and a download stay."""
    old = await rig.vod("4001", "uploaded", files=4, processed=1,
                        uploaded_at=datetime.now(UTC) - timedelta(days=9))  # fmt: skip
    new = await rig.vod("4002", "uploaded", files=4, processed=1,
                        uploaded_at=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    busy = await rig.vod("4003", "downloading", files=4)
    cap_gb = 9 * 1024 / 2**30  # room for two of the three
    removed = await rig.sweeper(keep=None, max_gb=cap_gb).sweep_once()
    assert [r.dir.vod_id for r in removed] == ["4001"]
    assert not old.exists()
    assert new.exists()
    assert busy.exists()


async def test_orphans_go_but_nothing_else_in_data_dir_is_touched(rig: Rig) -> None:
    """An old VOD directory no row owns is removed; a fresh one, the embedded database, other files and links are not."""
    await rig.vod("5001", "queued")
    orphan = rig.data_dir / "alice" / "5999"
    orphan.mkdir(parents=True)
    (orphan / "x.mp4").write_bytes(b"x" * 10)
    age(orphan, 2)
    fresh = rig.data_dir / "bob" / "6000"
    fresh.mkdir(parents=True)
    postgres = rig.data_dir / "postgres" / "123"
    postgres.mkdir(parents=True)
    (postgres / "PG_VERSION").write_text("16")
    age(postgres, 100)
    notes = rig.data_dir / "alice" / "notes"
    notes.mkdir()
    age(notes, 100)
    outside = rig.data_dir.parent / f"{rig.data_dir.name}-outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (rig.data_dir / "carol").mkdir()
    (rig.data_dir / "carol" / "7000").symlink_to(outside)
    removed = await rig.sweeper().sweep_once()
    assert [r.dir.vod_id for r in removed] == ["5999"]
    assert not orphan.exists()
    assert fresh.exists()
    assert (postgres / "PG_VERSION").exists()
    assert notes.exists()
    assert (outside / "keep.txt").exists()


async def test_an_empty_database_never_removes_orphans(rig: Rig) -> None:
    """Pointed at an old DATA_DIR with an empty database, the sweeper removes nothing."""
    orphan = rig.data_dir / "alice" / "8001"
    orphan.mkdir(parents=True)
    age(orphan, 1000)
    assert await rig.sweeper().sweep_once() == []
    assert orphan.exists()


async def test_a_vod_whose_state_changed_since_the_plan_keeps_its_files(rig: Rig) -> None:
    """The removal re-reads the state under the row lock: a VOD retried after the plan is left alone."""
    directory = await rig.vod("9001", "canceled")
    called: list[bool] = []

    async def remove() -> bool:
        called.append(True)
        return True

    await rig.sql("UPDATE vods SET state = 'queued'")
    assert not await rig.store.remove_owned("9001", "canceled", remove)
    assert called == []
    assert directory.exists()


async def test_after_upload_removes_at_once_only_with_keep_days_zero(rig: Rig) -> None:
    """The upload stage's hand-off deletes a just-published VOD with RETENTION_KEEP_DAYS=0, and keeps it otherwise."""
    first = await rig.vod("9101", "uploaded", processed=1, uploaded_at=datetime.now(UTC))
    second = await rig.vod("9102", "uploaded", processed=1, uploaded_at=datetime.now(UTC))
    rows = dict(await rig.sql("SELECT twitch_vod_id, id FROM vods"))
    await rig.sweeper(keep=3).after_upload(rows["9101"])
    assert first.exists()
    await rig.sweeper(keep=0).after_upload(rows["9102"])
    assert not second.exists()


async def test_the_dry_run_command_lists_what_would_go_and_removes_nothing(rig: Rig) -> None:
    """`vodarchiver retention --dry-run` prints each directory with its size and the total freed; the files stay."""
    directory = await rig.vod("9201", "uploaded", files=2, processed=1,
                              uploaded_at=datetime.now(UTC))  # fmt: skip
    await rig.vod("9202", "downloading")
    settings = load_settings({"ENV_FILE": os.devnull, "DATABASE_URL": rig.db_url,
                              "DATA_DIR": str(rig.data_dir)})  # fmt: skip
    out = io.StringIO()
    assert await retention(settings, dry_run=True, out=out) == 0
    text = out.getvalue()
    assert f"would remove {directory}" in text
    assert "9202" not in text
    assert "1 VOD directory, 0.00 GiB of 0.00 GiB would be freed" in text
    assert directory.exists()
    out = io.StringIO()
    assert await retention(settings, dry_run=False, out=out) == 0
    assert f"removed {directory}" in out.getvalue()
    assert not directory.exists()


async def test_a_leased_vod_is_rechecked_under_the_row_lock(rig: Rig) -> None:
    """A worker that took the VOD after the plan (its lease live by the database's clock) keeps its files."""
    directory = await rig.vod("9201", "canceled")

    async def remove() -> bool:
        raise AssertionError("removed a leased VOD")

    await rig.sql("UPDATE vods SET claimed_by = 'w', claim_until = now() + interval '60 seconds'")
    assert not await rig.store.remove_owned("9201", "canceled", remove)
    assert directory.exists()


async def test_a_directory_whose_lock_a_download_holds_is_never_removed(rig: Rig) -> None:
    """A download holding DATA_DIR/<channel>/<id>/.lock (media/downloader.py) keeps the directory, even an orphan's."""
    await rig.vod("9301", "queued")
    directory = await rig.vod("9302", "canceled")
    await rig.sql("UPDATE vods SET state_changed_at = now() - interval '40 days' "
                  "WHERE twitch_vod_id = '9302'")  # fmt: skip
    orphan = rig.data_dir / "alice" / "9399"
    orphan.mkdir()
    # A download holds the lock for its whole run (not a `with` block).
    held = [(d / ".lock").open("a+b") for d in (directory, orphan)]
    age(orphan, 2)
    try:
        for fh in held:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sweeper = rig.sweeper(failed=30)
        assert sorted(r.dir.vod_id for r in (await sweeper.plan())[0]) == ["9302", "9399"]
        assert await sweeper.sweep_once() == []
        assert directory.exists()
        assert orphan.exists()
    finally:
        for fh in held:
            fh.close()
    assert sorted(r.dir.vod_id for r in await rig.sweeper(failed=30).sweep_once()) == [
        "9302", "9399"]  # fmt: skip
    assert not directory.exists()
    assert not orphan.exists()


async def test_skipped_and_failed_vods_lose_their_files_after_failed_days(rig: Rig) -> None:
    """RETENTION_FAILED_DAYS removes the files of VODs failed for good, canceled and skipped, none earlier."""
    dirs = {}
    for n, state in enumerate(["failed_permanent", "canceled", "skipped"]):
        dirs[state] = await rig.vod(f"940{n}", "downloading")
        await rig.sql("UPDATE vods SET state = %s WHERE twitch_vod_id = %s", state, f"940{n}")
    sweeper = rig.sweeper(keep=None, failed=2)
    rig.clock.now += timedelta(days=1)
    assert await sweeper.sweep_once() == []
    rig.clock.now += timedelta(days=1, seconds=1)
    removed = await sweeper.sweep_once()
    assert sorted(r.state or "" for r in removed) == ["canceled", "failed_permanent", "skipped"]
    assert not any(d.exists() for d in dirs.values())
