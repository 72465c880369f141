"""The web console's reads of PostgreSQL: VODs at risk, transfers running, keyset pages, channels.

Same rules as `store.py`: one method per named statement (in `console.sql`, loaded with the
others by `queries.q`), psycopg's errors translated by `pooled`. The statements whose filters
are optional are executed unprepared: psycopg prepares a statement after a few runs, and
PostgreSQL's generic plan for `(%(x)s IS NULL OR col = %(x)s)` can be a sequential scan
(FIELD-NOTES, 188 ms at 1M rows); an unprepared statement is planned with its real values each
time, which keeps the keyset pages on their indexes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

import psycopg_pool
from psycopg.rows import dict_row

from vodarchiver.db.queries import q
from vodarchiver.db.store import pooled

TIMEOUT_S = 5.0
SORTS = ("expiry", "date")
SEARCH_STEP = 20_000  # messages read per step of a chat search
SEARCH_BUDGET_S = 0.2  # a search request stops stepping after this and returns where it got


@dataclass(frozen=True)
class VodFilter:
    """What the VOD list shows: one channel, one state, titles containing some text."""

    channel: str | None = None
    state: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class Cursor:
    """Where a keyset page starts: after the row whose sort key and row id these are."""

    key: str  # PostgreSQL's text of a time, or 'infinity' / '-infinity'
    row_id: int

    def encode(self) -> str:
        """The `after` query parameter for the next page."""
        return f"{self.key}|{self.row_id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        """The inverse of `encode`; ValueError for anything else."""
        key, sep, row_id = raw.rpartition("|")
        if not sep or key not in ("infinity", "-infinity"):
            datetime.fromisoformat(key)  # raises ValueError when it is not a time
        number = int(row_id)
        if not 0 <= number < 2**63:
            raise ValueError("row id out of range")
        return cls(key, number)


def like_pattern(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its own `%`, `_` and `\\` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ConsoleStore:
    """Named console queries over the daemon's pool."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def _rows(self, query: LiteralString, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with pooled(self._pool, TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query, params, prepare=False)
            return await cur.fetchall()

    async def at_risk(self, window_s: float, limit: int = 50) -> list[dict[str, Any]]:
        """VODs not archived yet that expire within `window_s`, soonest first."""
        return await self._rows(q("console_at_risk"), {"window_s": window_s, "limit": limit})

    async def active(self) -> list[dict[str, Any]]:
        """Downloads and uploads running now."""
        return await self._rows(q("console_active"), {})

    async def vods_page(
        self, where: VodFilter, *, sort: str, after: Cursor | None, limit: int
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """One page of VODs in `sort` order and the cursor of the next page (None at the end)."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        if after is None:  # before the first row of either order
            after = Cursor("-infinity", 0) if sort == "expiry" else Cursor("infinity", 2**63 - 1)
        params = {
            "channel": where.channel, "state": where.state,
            "title": like_pattern(where.title) if where.title else None,
            "after_key": after.key, "after_id": after.row_id, "limit": limit + 1,
        }  # fmt: skip
        rows = await self._rows(
            q("console_vods_by_expiry") if sort == "expiry" else q("console_vods_by_date"), params
        )
        more = len(rows) > limit
        rows = rows[:limit]
        if not more:
            return rows, None
        return rows, Cursor(str(rows[-1]["sort_key"]), int(rows[-1]["sort_id"]))

    async def channels(self, logins: Sequence[str]) -> list[dict[str, Any]]:
        """Each configured channel as discovery last saw it."""
        return await self._rows(q("console_channels"), {"logins": list(logins)})

    async def chat_search(
        self,
        vod_id: str,
        *,
        from_ms: int,
        after: tuple[int, str] | None,
        text: str | None,
        user: str | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
        """Up to `limit` matching messages and where to go on from (None: the chat is read).

        A rare word in a long chat would otherwise read every message in one request (about
        0.7 s for 1,000,000 on this machine): the search reads SEARCH_STEP messages at a time
        and stops after SEARCH_BUDGET_S with what it found and the last message it read, so
        every request is bounded and the next one continues there.
        """
        cursor = after if after is not None else (from_ms - 1, "")
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + SEARCH_BUDGET_S
        while True:
            params = {
                "vod_id": vod_id, "from_ms": from_ms, "after_ms": cursor[0],
                "after_id": cursor[1], "scan": SEARCH_STEP, "limit": limit - len(found),
                "text": like_pattern(text) if text else None,
                "user": user.lower() if user else None,
            }  # fmt: skip
            rows = await self._rows(q("console_chat_search"), params)
            if not rows:
                return found, None  # nothing left to read
            found += [r for r in rows if r["msg_id"] is not None]
            if len(found) >= limit:
                return found, (int(found[-1]["offset_ms"]), str(found[-1]["msg_id"]))
            edge = rows[-1]
            cursor = (int(edge["edge_offset_ms"]), str(edge["edge_msg_id"]))
            if int(edge["scanned"]) < SEARCH_STEP:
                return found, None
            if time.monotonic() > deadline:
                return found, cursor
