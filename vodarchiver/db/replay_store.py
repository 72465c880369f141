"""The chat replay's view of PostgreSQL: jobs with leases, replayed pages, chapters.

Same rules as `store.py` (one method per named query, psycopg errors translated by `pooled`).
A page is stored in one transaction with the job's new resume point, so a SIGKILL between two
pages loses nothing and repeats at most the page in flight (whose ids then merge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from vodarchiver.db.queries import q
from vodarchiver.db.store import pooled
from vodarchiver.errors import LeaseLost
from vodarchiver.twitch.gql_models import ReplayComment, VideoChapter

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ReplayJob:
    """A claimed VOD whose chat is to be replayed."""

    vod_row_id: int
    vod_id: str
    channel: str
    started_at: datetime | None
    duration_s: int | None
    offset_s: int
    cursor: str | None
    chapters_at: datetime | None
    attempts: int


@dataclass(frozen=True)
class Stored:
    """What one page changed: new rows, and rows live chat had that the replay marked."""

    inserted: int
    merged: int


class ReplayStore:
    """Named queries of the chat replay stage over the daemon's pool."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def enqueue(self) -> int:
        """Create the replay job of every VOD whose stream has ended and has none yet."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            return (await conn.execute(q("replay_enqueue"))).rowcount

    async def claim(self, owner: str, lease_s: float, *, prefix: str) -> ReplayJob | None:
        """The next due job, leased to `owner`, or None. `prefix`: earlier runs of ours."""
        params = {"owner": owner, "lease_s": lease_s, "prefix": prefix}
        async with pooled(self._pool, TIMEOUT_S) as conn:
            cur = await conn.execute(q("replay_claim"), params)
            row = await cur.fetchone()
        if row is None:
            return None
        vod_row_id, vod_id, channel, date, duration, offset, cursor, chapters_at, attempts = row
        return ReplayJob(int(vod_row_id), str(vod_id), str(channel), date,
                         None if duration is None else int(duration), int(offset), cursor,
                         chapters_at, int(attempts))  # fmt: skip

    async def store_page(
        self, job: ReplayJob, owner: str, comments: Sequence[ReplayComment], *,
        offset_s: int, cursor: str | None, lease_s: float,
    ) -> Stored:  # fmt: skip
        """Store a page's messages and the new resume point together; LeaseLost if not ours."""
        async with pooled(self._pool, TIMEOUT_S) as conn, conn.transaction():
            cur = await conn.execute(q("replay_hold"), {"vod_row_id": job.vod_row_id,
                                                        "owner": owner})  # fmt: skip
            if await cur.fetchone() is None:
                raise LeaseLost(f"replay of VOD {job.vod_id} was taken over")
            stored = Stored(0, 0)
            if comments:
                stored = await _insert(conn, job, comments)
            await conn.execute(q("replay_progress"), {
                "vod_row_id": job.vod_row_id, "owner": owner, "offset_s": offset_s,
                "cursor": cursor, "messages": stored.inserted + stored.merged,
                "merged": stored.merged, "lease_s": lease_s,
            })  # fmt: skip
            return stored

    async def finish(
        self, job: ReplayJob, owner: str, *, state: str, reason: str | None, retry_s: float
    ) -> None:
        """End the run: `done`, `unavailable` (with Twitch's reason) or `pending` (put back)."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            await conn.execute(q("replay_finish"), {
                "vod_row_id": job.vod_row_id, "owner": owner, "state": state,
                "reason": reason, "retry_s": retry_s,
            })  # fmt: skip

    async def store_chapters(
        self, job: ReplayJob, owner: str, chapters: Sequence[VideoChapter]
    ) -> None:
        """Replace the VOD's chapters with these, and note when they were fetched."""
        async with pooled(self._pool, TIMEOUT_S) as conn, conn.transaction():
            await conn.execute(q("chapters_delete"), {"vod_row_id": job.vod_row_id})
            if chapters:
                await conn.execute(q("chapters_insert"), {
                    "vod_row_id": job.vod_row_id,
                    "positions": list(range(len(chapters))),
                    "starts": [c.start_ms for c in chapters],
                    "durations": [c.duration_ms for c in chapters],
                    "titles": [c.title for c in chapters], "games": [c.game_id for c in chapters],
                })  # fmt: skip
            await conn.execute(
                q("chapters_fetched"), {"vod_row_id": job.vod_row_id, "owner": owner}
            )

    async def status(self, vod_id: str) -> dict[str, Any] | None:
        """One VOD's replay job as /vods/{id} shows it, or None."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("replay_status"), {"vod_id": vod_id})
            return await cur.fetchone()

    async def minute_sources(self, vod_id: str) -> list[int]:
        """Each minute of the VOD: which sources saw chat in it (bitmask; empty: no such VOD)."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            cur = await conn.execute(q("chat_coverage_minutes"), {"vod_id": vod_id})
            return [int(sources) for _, sources in await cur.fetchall()]

    async def chapter_marks(self, vod_id: str) -> list[tuple[float, str]]:
        """A VOD's chapters as (start in seconds, title), for descriptions and split points."""
        return [(c.start_ms / 1000, c.title) for c in await self.chapters(vod_id)]

    async def chapters(self, vod_id: str) -> list[VideoChapter]:
        """A VOD's stored chapters, in order."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            cur = await conn.execute(q("chapters_of_vod"), {"vod_id": vod_id})
            return [VideoChapter(int(s), int(d), str(t), g) for s, d, t, g in await cur.fetchall()]


async def _insert(
    conn: psycopg.AsyncConnection[Any], job: ReplayJob, comments: Sequence[ReplayComment]
) -> Stored:
    cur = await conn.execute(q("replay_insert"), {
        "vod_row_id": job.vod_row_id, "channel": job.channel, "vod_start": job.started_at,
        "msg_ids": [c.id for c in comments], "user_ids": [c.user_id for c in comments],
        "usernames": [c.login for c in comments],
        "display_names": [c.display_name for c in comments],
        "messages": [c.text for c in comments], "offsets": [c.offset_s for c in comments],
        "raw_tags": [c.raw_tags for c in comments], "colors": [c.color for c in comments],
    })  # fmt: skip
    flags = [bool(r[0]) for r in await cur.fetchall()]
    return Stored(sum(flags), len(flags) - sum(flags))
