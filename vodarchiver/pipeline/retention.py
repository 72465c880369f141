"""The retention sweeper: carries out `retention_rules.decide` on DATA_DIR.

Every RETENTION_SWEEP_INTERVAL it lists DATA_DIR/<channel>/<vod id> (never following a link,
never `DATA_DIR/postgres`, nothing that is not such a directory), asks the database about the
VODs it found, and removes what the rules allow, each VOD under a lock on its row that first
checks its state is unchanged and no worker holds a lease on it, and never while a download
holds the directory's lock file. The upload stage hands each published VOD to `after_upload`, which
removes its files at once when RETENTION_KEEP_DAYS is 0 (DELETE_AFTER_UPLOAD's old behaviour);
a crash between the `uploaded` commit and that removal is repaired by the next sweep. `plan` is
the same decision without removing anything (`vodarchiver retention --dry-run`).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from vodarchiver.db.retention_store import RetentionStore
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.logs import get_logger
from vodarchiver.pipeline.retention_rules import (
    CHANNEL_DIR,
    RESERVED_DIRS,
    Removal,
    RetentionPolicy,
    VodDir,
    VodFacts,
    decide,
    is_vod_dir,
)


def _measure(path: Path) -> tuple[int, float]:
    """Bytes under `path` and its newest modification time (links are not followed)."""
    size, newest = 0, path.lstat().st_mtime
    for root, dirs, names in os.walk(path, followlinks=False):
        for name in (*names, *dirs):
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue  # removed while we looked
            size += st.st_size if name in names else 0
            newest = max(newest, st.st_mtime)
    return size, newest


def remove_unless_held(path: Path) -> bool:
    """Remove the directory, unless a download holds its lock file (media/downloader.py)."""
    try:
        fd: int | None = os.open(path / ".lock", os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        fd = None
    except OSError:
        return False  # a link in place of the lock, or unreadable: not ours to judge
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        shutil.rmtree(path, ignore_errors=True)
        return True
    finally:
        if fd is not None:
            os.close(fd)


def scan_candidates(data_dir: Path) -> list[tuple[str, str, Path]]:
    """(channel, name, path) of every directory two levels below DATA_DIR that may be a VOD's."""
    found: list[tuple[str, str, Path]] = []
    try:
        channels = sorted(os.scandir(data_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return found
    for channel in channels:
        if channel.name in RESERVED_DIRS or not CHANNEL_DIR.match(channel.name):
            continue
        if not channel.is_dir(follow_symlinks=False):
            continue
        for entry in sorted(os.scandir(channel.path), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                found.append((channel.name, entry.name, Path(entry.path)))
    return found


class Sweeper:
    """Removes the local files retention allows; never those of a VOD still needed."""

    def __init__(
        self,
        store: RetentionStore,
        policy: RetentionPolicy,
        *,
        data_dir: Path,
        interval_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self.policy = policy
        self._data_dir = data_dir.resolve()
        self._interval_s = interval_s
        self._clock = clock
        self._db_down = False
        self._log = get_logger("retention")

    def path_of(self, d: VodDir) -> Path:
        """DATA_DIR/<channel>/<vod id>."""
        return self._data_dir / d.channel / d.vod_id

    async def scan(self) -> tuple[list[VodDir], dict[str, VodFacts]]:
        """The VOD directories on disk and the facts of those the database owns."""
        candidates = await asyncio.to_thread(scan_candidates, self._data_dir)
        vods = await self._store.vods([name for _, name, _ in candidates])
        dirs: list[VodDir] = []
        for channel, name, path in candidates:
            if not is_vod_dir(channel, name, known=name in vods):
                continue
            try:
                size, newest = await asyncio.to_thread(_measure, path)
            except FileNotFoundError:
                continue
            dirs.append(VodDir(channel, name, size, datetime.fromtimestamp(newest, UTC)))
        return dirs, vods

    async def plan(self) -> tuple[list[Removal], int]:
        """What would go now, and the bytes all VOD directories hold."""
        dirs, vods = await self.scan()
        removals = decide(dirs, vods, self.policy, self._clock(),
                          database_has_vods=await self._store.any_vod())  # fmt: skip
        return removals, sum(d.size for d in dirs)

    async def sweep_once(self) -> list[Removal]:
        """Carry out the plan; the removals actually made."""
        removals, _ = await self.plan()
        done = [r for r in removals if await self._remove(r)]
        if done:
            self._log.info("retention_swept", removed=len(done),
                           freed_bytes=sum(r.dir.size for r in done))  # fmt: skip
        return done

    async def after_upload(self, row_id: int) -> None:
        """The upload stage's hand-off of a VOD it just published."""
        if self.policy.keep_days != 0:
            return  # kept a while: a later sweep removes it
        try:
            found = await self._store.vod_by_row(row_id)
            if found is None:
                return
            channel, vod = found
            path = self._data_dir / channel / vod.vod_id
            if not path.is_dir() or path.is_symlink():
                return
            size, newest = await asyncio.to_thread(_measure, path)
            d = VodDir(channel, vod.vod_id, size, datetime.fromtimestamp(newest, UTC))
            for removal in decide([d], {vod.vod_id: vod}, self.policy, self._clock(),
                                  database_has_vods=True):  # fmt: skip
                await self._remove(removal)
        except DatabaseUnavailable as exc:
            # The VOD is published; its files go at the next sweep.
            self._log.warning("retention_deferred", reason=str(exc))

    async def _remove(self, removal: Removal) -> bool:
        path = self.path_of(removal.dir)
        if path.parent.parent != self._data_dir or path.is_symlink() or not path.is_dir():
            return False

        async def rm() -> bool:
            return await asyncio.to_thread(remove_unless_held, path)

        if removal.state is None:
            removed = await self._store.remove_orphan(removal.dir.vod_id, rm)
        else:
            removed = await self._store.remove_owned(removal.dir.vod_id, removal.state, rm)
        if removed:
            self._log.info("retention_removed", vod_id=removal.dir.vod_id,
                           channel=removal.dir.channel, reason=removal.reason,
                           freed_bytes=removal.dir.size)  # fmt: skip
        return removed

    async def run_forever(self) -> None:
        """Sweep every interval until cancelled; a database outage is logged once."""
        while True:
            try:
                await self.sweep_once()
                if self._db_down:
                    self._db_down = False
                    self._log.info("retention_resumed")
            except DatabaseUnavailable as exc:
                if not self._db_down:
                    self._db_down = True
                    self._log.warning("retention_paused", reason=str(exc))
            await asyncio.sleep(self._interval_s)
