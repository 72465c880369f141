"""Retention's view of PostgreSQL: the facts of the VODs on disk, and removal under a row lock.

The statements live in `retention.sql` (loaded with queries.sql). A VOD's files are removed
inside a transaction that holds its row (`FOR UPDATE`) and first checks that its state is still
the one the decision was made on and that no worker holds a lease on it, so an operator's retry
or a claim can never race a removal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row, tuple_row

from vodarchiver.db.queries import q
from vodarchiver.db.store import DEFAULT_TIMEOUT_S, Store
from vodarchiver.pipeline.retention_rules import VodFacts

REMOVAL_TIMEOUT_S = 120.0  # removing a large directory tree holds the row this long at most


def _facts(row: dict[str, Any]) -> VodFacts:
    changed: datetime = row["state_changed_at"]
    return VodFacts(str(row["twitch_vod_id"]), str(row["state"]), changed, row["uploaded_at"],
                    bool(row["processed"]), row["claim_until"])  # fmt: skip


class RetentionStore(Store):
    """Named statements of the retention sweeper."""

    async def vods(self, ids: Sequence[str]) -> dict[str, VodFacts]:
        """The facts of these VODs (absent: not in the database)."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("retention_vods"), {"ids": list(ids)})
            return {str(r["twitch_vod_id"]): _facts(r) for r in await cur.fetchall()}

    async def vod_by_row(self, row_id: int) -> tuple[str, VodFacts] | None:
        """(channel, facts) of one VOD by its row id."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("retention_vod_by_row"), {"id": row_id})
            row = await cur.fetchone()
        return (str(row["channel"]), _facts(row)) if row else None

    async def any_vod(self) -> bool:
        """Whether the database knows any VOD at all."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("retention_any_vod"))
            row = await cur.fetchone()
            return bool(row and row[0])

    async def remove_owned(
        self, vod_id: str, expected_state: str, remove: Callable[[], Awaitable[bool]]
    ) -> bool:
        """Run `remove` while holding the VOD, if it is still in `expected_state` and no
        worker holds a lease on it."""
        async with self._conn(REMOVAL_TIMEOUT_S) as conn, conn.transaction():
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("retention_lock"), {"id": vod_id})
            row = await cur.fetchone()
            if row is None or row[0] != expected_state or row[1]:
                return False
            if not await remove():
                return False
            await conn.execute(q("retention_files_gone"), {"id": vod_id})
            return True

    async def remove_orphan(self, vod_id: str, remove: Callable[[], Awaitable[bool]]) -> bool:
        """Run `remove` if the database still does not know the VOD."""
        async with self._conn(REMOVAL_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("retention_vod_exists"), {"id": vod_id})
            row = await cur.fetchone()
            if row is None or row[0]:
                return False
            return await remove()
