"""The notifications outbox in PostgreSQL: claims, deliveries, conditions, status.

The statements live in `notify.sql` (loaded with queries.sql; names are unique across files).
Errors are translated as in `Store`: DatabaseUnavailable when PostgreSQL does not answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from vodarchiver.db.queries import q
from vodarchiver.db.store import DEFAULT_TIMEOUT_S, Store


@dataclass(frozen=True)
class Outgoing:
    """A claimed event, to deliver."""

    id: int
    event: str
    vod_id: str | None
    payload: dict[str, Any]
    attempts: int
    delivered_to: tuple[str, ...]
    created_at: datetime


class NotifyStore(Store):
    """Named statements of the outbox, the sender and the checker."""

    async def claim(self, *, owner: str, lease_s: float, limit: int) -> list[Outgoing]:
        """Due events for this sender, held for `lease_s`."""
        params = {"owner": owner, "lease_s": lease_s, "limit": limit}
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("notify_claim"), params)
            rows = await cur.fetchall()
        return sorted(
            (Outgoing(r["id"], r["event"], r["vod_id"], dict(r["payload"] or {}), r["attempts"],
                      tuple(r["delivered_to"] or ()), r["created_at"]) for r in rows),
            key=lambda o: o.id,
        )  # fmt: skip

    async def delivered(
        self, row_id: int, *, owner: str, targets: Sequence[str], done: bool
    ) -> bool:
        """Record the targets that took it; False if another sender owns it now."""
        params = {"id": row_id, "owner": owner, "targets": list(targets), "done": done}
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = await conn.execute(q("notify_delivered"), params)
            return await cur.fetchone() is not None

    async def retry(
        self, row_id: int, *, owner: str, error: str, delay_s: float, give_up: bool
    ) -> None:
        """A delivery failed: when to try again, or give up."""
        params = {"id": row_id, "owner": owner, "error": error[:500], "delay_s": delay_s,
                  "give_up": give_up}  # fmt: skip
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("notify_retry"), params)

    async def skip(self, row_id: int, *, owner: str, why: str) -> None:
        """Not to be sent, ever."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("notify_skip"), {"id": row_id, "owner": owner, "why": why})

    async def release_previous(self, *, prefix: str, owner: str) -> None:
        """Free what a killed earlier run of this daemon held."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("notify_release_previous"), {"prefix": prefix, "owner": owner})

    async def insert(
        self, event: str, dedupe_key: str, payload: dict[str, Any], vod_id: str | None = None
    ) -> bool:
        """Raise a condition once: True if this call created the event."""
        params = {"event": event, "dedupe_key": dedupe_key, "vod_id": vod_id,
                  "payload": Jsonb(payload)}  # fmt: skip
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = await conn.execute(q("notify_insert"), params)
            return await cur.fetchone() is not None

    async def prune(self, days: int) -> None:
        """Forget finished events older than `days`."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("notify_prune"), {"days": days})

    async def status(self) -> dict[str, Any]:
        """Counts and the deliveries that keep failing."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("notify_status"))
            counts = await cur.fetchone() or {}
            await cur.execute(q("notify_failing"))
            failing = await cur.fetchall()
        return {"counts": dict(counts), "failing": [dict(r) for r in failing]}

    async def at_risk(self, window_s: float) -> list[dict[str, Any]]:
        """Unarchived VODs expiring within `window_s`."""
        return await self._rows(q("notify_at_risk"), {"window_s": window_s})

    async def chat_overdue(self, window_s: float) -> list[dict[str, Any]]:
        """Placeholders without their VOD `window_s` after their stream ended."""
        return await self._rows(q("notify_chat_overdue"), {"window_s": window_s})

    async def token_age(self, provider: str) -> dict[str, Any] | None:
        """The stored refresh token's generation and issue time, if there is one."""
        rows = await self._rows(q("notify_token_age"), {"provider": provider})
        return rows[0] if rows else None

    async def episode_open(self, key: str, value: str) -> str:
        """Name of the condition's current episode (`value` if this call began it)."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = await conn.execute(q("notify_episode_open"), {"key": key, "value": value})
            row = await cur.fetchone()
            return str(row[0]) if row else value

    async def episode_close(self, key: str) -> None:
        """The condition is over; the next one is a new episode."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("notify_episode_close"), {"key": key})

    async def _rows(self, statement: LiteralString, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(statement, params)
            return [dict(r) for r in await cur.fetchall()]
