"""Chat's view of PostgreSQL: batched writes, placeholders, reconciliation, export pages.

Same rules as `store.py` (one method per named query, psycopg errors translated by `pooled`).
A batch is written in one transaction: the placeholders it writes to are locked `FOR SHARE`
first, so a reconciliation of the same stream either sees the whole batch or runs before it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row, tuple_row

from vodarchiver.db.queries import q
from vodarchiver.db.store import pooled
from vodarchiver.twitch.irc import ChatEvent

WRITE_TIMEOUT_S = 10.0
TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ChatRow:
    """An event as recorded: with the live stream (placeholder) it belongs to, if known."""

    event: ChatEvent
    stream_id: str | None


@dataclass(frozen=True)
class ReconcileCandidate:
    """A placeholder whose VOD has appeared."""

    stream_id: str
    vod_row_id: int
    stream_started_at: datetime
    vod_started_at: datetime


@dataclass(frozen=True)
class WriteResult:
    """What a batch changed."""

    inserted: dict[str, int]  # by channel
    deleted: int


class ChatStore:
    """Named chat queries over the daemon's pool."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def write(self, rows: Sequence[ChatRow]) -> WriteResult:
        """Insert a batch (duplicates dropped) and apply its CLEARMSG deletions, in one go.

        The batch is COPYed straight into `chat_messages` (binary). Should any of its ids be
        there already (a restart replays a few), that COPY is rolled back to a savepoint and the
        batch goes through a staging table and one INSERT ... ON CONFLICT DO NOTHING instead.
        Measured with `make bench` and in ARCHITECTURE.md: the direct COPY costs PostgreSQL less
        than half of the staged path, which was itself three times an INSERT over unnest().
        """
        deleted_ids = [r.event.target_msg_id for r in rows if r.event.target_msg_id is not None]
        stream_ids = sorted({r.stream_id for r in rows if r.stream_id is not None})
        async with pooled(self._pool, WRITE_TIMEOUT_S) as conn, conn.transaction():
            streams: dict[str, tuple[int | None, int, int]] = {}
            if stream_ids:
                cur = await conn.execute(q("chat_streams_lock"), {"ids": stream_ids})
                streams = {str(s): (v, int(t), int(d)) for s, v, t, d in await cur.fetchall()}
            inserted: dict[str, int] | None = None
            if all(_fits_direct(r.event) for r in rows):
                try:
                    async with conn.transaction():
                        inserted = await _copy_direct(conn, rows, streams)
                except psycopg.errors.UniqueViolation:
                    inserted = None  # some ids are stored already: the staged path skips them
            if inserted is None:
                inserted = await _copy_staged(conn, rows)
            deleted = 0
            if deleted_ids:
                result = await conn.execute(q("chat_mark_deleted"), {"ids": deleted_ids})
                deleted = result.rowcount
        return WriteResult(inserted, deleted)

    async def stream_open(self, stream_id: str, channel: str, started_at: datetime) -> None:
        """Record a live stream (the placeholder its chat attaches to)."""
        params = {"stream_id": stream_id, "channel": channel, "started_at": started_at}
        async with pooled(self._pool, TIMEOUT_S) as conn:
            await conn.execute(q("chat_stream_open"), params)

    async def stream_close(self, stream_id: str, ended_at: datetime) -> None:
        """Record that a stream went offline."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            await conn.execute(
                q("chat_stream_close"), {"stream_id": stream_id, "ended_at": ended_at}
            )

    async def reconcile_candidates(self, window_s: float) -> list[ReconcileCandidate]:
        """Placeholders whose VOD is now known (by stream id, or by start time within window)."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("chat_reconcile_candidates"), {"window_s": window_s})
            return [ReconcileCandidate(str(s), int(v), a, b) for s, v, a, b in await cur.fetchall()]

    async def reconcile(self, stream_id: str, vod_row_id: int, shift_ms: int) -> int | None:
        """Move a placeholder's messages to its VOD, shifting offsets, in one transaction.

        Returns the number of messages moved, or None when the placeholder was already
        reconciled (by another replica, or an earlier pass): running it twice changes nothing.
        """
        params = {"stream_id": stream_id, "vod_row_id": vod_row_id, "shift_ms": shift_ms}
        async with pooled(self._pool, WRITE_TIMEOUT_S * 3) as conn, conn.transaction():
            cur = await conn.execute(q("chat_stream_take"), {"stream_id": stream_id})
            if await cur.fetchone() is None:
                return None
            await conn.execute(q("chat_stream_reconcile"), params)
            cur = await conn.execute(q("chat_messages_reconcile"), params)
            return cur.rowcount

    async def attach_orphans(self) -> int:
        """Attach messages recorded without a known stream to the VOD running when sent."""
        async with pooled(self._pool, WRITE_TIMEOUT_S * 3) as conn:
            cur = await conn.execute(q("chat_attach_orphans"))
            return cur.rowcount

    async def placeholders(self, window_s: float) -> list[dict[str, Any]]:
        """Unreconciled placeholders, with `overdue` once VOD_RECONCILE_WINDOW has passed."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("chat_placeholders_unreconciled"), {"window_s": window_s})
            return await cur.fetchall()

    async def page(
        self,
        vod_id: str,
        *,
        from_ms: int,
        to_ms: int,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """One page of a VOD's chat in offset order, after the (offset, id) cursor."""
        after_ms, after_id = after if after is not None else (from_ms - 1, "")
        params = {"vod_id": vod_id, "from_ms": from_ms, "to_ms": to_ms, "after_ms": after_ms,
                  "after_id": after_id, "limit": limit}  # fmt: skip
        async with pooled(self._pool, TIMEOUT_S * 2) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("chat_page"), params)
            return await cur.fetchall()


# Python's datetime ends with the year 9999, PostgreSQL's later; `bits` is an int4. A row past
# either (a nonsense tag) takes the staged path, where PostgreSQL converts or refuses it as before.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_SENT_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z
_MAX_INT4 = 2**31 - 1
_DIRECT_TYPES = ["text", "int8", "text", "text", "text", "text", "text", "text", "timestamptz",
                 "int8", "text", "text", "text", "bool", "int4", "text"]  # fmt: skip


def _fits_direct(e: ChatEvent) -> bool:
    return e.sent_at_ms <= _MAX_SENT_MS and (e.bits is None or e.bits <= _MAX_INT4)


async def _copy_direct(
    conn: psycopg.AsyncConnection[Any],
    rows: Sequence[ChatRow],
    streams: dict[str, tuple[int | None, int, int]],
) -> dict[str, int]:
    """COPY the rows into chat_messages; the new rows by channel (all of them, or it raised)."""
    epoch, ms = _EPOCH, timedelta(milliseconds=1)
    inserted: Counter[str] = Counter()
    cur = conn.cursor(row_factory=tuple_row)
    async with cur.copy(q("chat_copy_direct")) as copy:
        copy.set_types(_DIRECT_TYPES)
        for row in rows:
            e = row.event
            vod_id = offset_ms = None
            if row.stream_id is not None and (stream := streams.get(row.stream_id)) is not None:
                # The same arithmetic as `chat_insert`: offset from the stream's start, shifted.
                vod_id, started_ms, shift_ms = stream
                offset_ms = e.sent_at_ms - started_ms + shift_ms
            await copy.write_row((
                e.msg_id, vod_id, e.channel, e.kind, e.user_id, e.login, e.display_name, e.text,
                epoch + e.sent_at_ms * ms, offset_ms, e.raw_tags, row.stream_id, e.color,
                e.action, e.bits, e.reply_parent_id,
            ))  # fmt: skip
            inserted[e.channel] += 1
    return dict(inserted)


async def _copy_staged(
    conn: psycopg.AsyncConnection[Any], rows: Sequence[ChatRow]
) -> dict[str, int]:
    """COPY into the connection's staging table, then INSERT ... ON CONFLICT DO NOTHING."""
    await conn.execute(q("chat_quiet"))
    await conn.execute(q("chat_stage_create"))
    cur = conn.cursor(row_factory=tuple_row)
    async with cur.copy(q("chat_copy")) as copy:
        for row in rows:
            e = row.event
            await copy.write_row((
                e.msg_id, e.channel, e.kind, e.user_id, e.login, e.display_name, e.text,
                e.sent_at_ms, e.raw_tags, row.stream_id, e.color, e.action, e.bits,
                e.reply_parent_id,
            ))  # fmt: skip
    await cur.execute(q("chat_insert"))
    return {str(c): int(n) for c, n in await cur.fetchall()}
