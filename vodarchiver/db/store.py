"""The daemon's view of PostgreSQL: one method per named query, translating psycopg errors.

Every method raises DatabaseUnavailable (transient) when PostgreSQL does not answer in time or
the connection breaks, so callers above the adapters never see psycopg exceptions.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, LiteralString

import psycopg
import psycopg_pool
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

from vodarchiver.db.queries import q
from vodarchiver.errors import DatabaseUnavailable, DataRejected
from vodarchiver.models import (
    GONE_AFTER,
    ChannelRecord,
    Claim,
    DownloadClaim,
    DownloadResult,
    PassResult,
    VodState,
    VodUpsert,
)

DEFAULT_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class ListCursor:
    """Where a page of `GET /vods` starts: after the row with this priority, expiry and id.

    `expiry` is an ISO 8601 time with its offset, or 'infinity' for a VOD without one.
    """

    priority: int
    expiry: str
    row_id: int


@dataclasses.dataclass(frozen=True)
class ScrapeFigures:
    """The database's figures for one `/metrics` scrape."""

    counts: dict[VodState, int]
    expiring_soon: int
    next_expiry: datetime | None


@asynccontextmanager
async def pooled(
    pool: psycopg_pool.AsyncConnectionPool[Any], timeout_s: float
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection for at most `timeout_s`, psycopg's errors translated to ours."""
    try:
        async with asyncio.timeout(timeout_s), pool.connection(timeout=timeout_s) as conn:
            yield conn
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout, TimeoutError) as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        # The data was refused (out of range, a NUL byte, a duplicate): skip it, do not crash.
        raise DataRejected(f"the database refused the data: {exc.__class__.__name__}") from exc


class Store:
    """Named queries over a connection pool."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @property
    def pool(self) -> psycopg_pool.AsyncConnectionPool[Any]:
        """The pool the store's queries run on (shared with ChatStore)."""
        return self._pool

    def _conn(self, timeout_s: float) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        return pooled(self._pool, timeout_s)

    async def vod_counts_by_state(
        self, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> dict[VodState, int]:
        """How many VODs are in each state; every state is present, zero when empty."""
        counts = dict.fromkeys(VodState, 0)
        async with self._conn(timeout_s) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("vod_counts_by_state"))
            for state, n in await cur.fetchall():
                counts[VodState(state)] = int(n)
        return counts

    async def kv_get_many(
        self, keys: Iterable[str], timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> dict[str, str]:
        """Values of the given `kv` keys; absent keys are absent from the result."""
        async with self._conn(timeout_s) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("kv_get_many"), {"keys": list(keys)})
            return {str(k): str(v) for k, v in await cur.fetchall()}

    async def kv_set(self, key: str, value: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Set one `kv` value."""
        async with self._conn(timeout_s) as conn:
            await conn.execute(q("kv_set"), {"key": key, "value": value})

    # --- discovery ------------------------------------------------------------------------

    async def channel_upsert(self, user: ChannelRecord) -> None:
        """Remember a channel's user id, display name and broadcaster type."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("channel_upsert"), dataclasses.asdict(user))

    async def channels_known(self, logins: Sequence[str]) -> dict[str, ChannelRecord]:
        """Channels whose user id we already know (the login-to-id cache across restarts)."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("channels_known"), {"logins": list(logins)})
            return {
                str(login): ChannelRecord(str(login), str(uid), str(name or ""), str(kind or ""))
                for login, uid, name, kind in await cur.fetchall()
            }

    async def channel_claim(
        self, login: str, *, owner: str, lease_s: float, min_gap_s: float
    ) -> Claim | None:
        """Take a channel for one pass; None when another replica has it or polled it just now."""
        params = {"login": login, "owner": owner, "lease_s": lease_s, "min_gap_s": min_gap_s}
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("channel_claim"), params)
            row = await cur.fetchone()
        return None if row is None else Claim(row[0], row[1], row[2])

    async def channel_renew(self, login: str, *, owner: str, lease_s: float) -> bool:
        """Extend our lease; False when another replica has taken the channel over."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(
                q("channel_renew"), {"login": login, "owner": owner, "lease_s": lease_s}
            )
            return await cur.fetchone() is not None

    async def channel_release(self, login: str, *, owner: str, result: PassResult) -> None:
        """End a pass: record its outcome and let the channel be claimed again."""
        params = {"login": login, "owner": owner, **dataclasses.asdict(result)}
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("channel_release"), params)

    async def vods_retention_update(self, channel: str, days: int) -> int:
        """Re-estimate the expiry of a channel's VODs whose retention window changed."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = await conn.execute(q("vods_retention_update"), {"channel": channel, "days": days})
            return cur.rowcount

    async def vod_durations(self, ids: Sequence[str]) -> dict[str, int | None]:
        """The stored duration of each of these VODs we already know."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("vods_durations"), {"ids": list(ids)})
            return {str(i): (int(d) if d is not None else None) for i, d in await cur.fetchall()}

    async def vods_upsert(self, rows: Sequence[VodUpsert]) -> dict[str, tuple[bool, VodState]]:
        """Insert or refresh a page of VODs in one statement: {id: (inserted, state)}."""
        if not rows:
            return {}
        names = [f.name for f in dataclasses.fields(VodUpsert)]
        columns: dict[str, list[Any]] = {name: [getattr(r, name) for r in rows] for name in names}
        columns["muted_segments"] = [Jsonb(m) for m in columns["muted_segments"]]
        async with self._conn(DEFAULT_TIMEOUT_S * 4) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("vods_upsert"), columns)
            return {str(i): (bool(new), VodState(state)) for i, new, state in await cur.fetchall()}

    async def vods_unarchived(self, channel: str) -> dict[str, datetime | None]:
        """VODs of a channel with no local copy yet, with their creation time."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("vods_unarchived"), {"channel": channel})
            return {str(i): d for i, d in await cur.fetchall()}

    async def vods_mark_missing(self, ids: Sequence[str], now: datetime) -> list[str]:
        """Note a confirmed miss, then mark gone those missing since before `missing_before`.

        Returns the VODs that became gone now.
        """
        if not ids:
            return []
        async with self._conn(DEFAULT_TIMEOUT_S) as conn, conn.transaction():
            await conn.execute(q("vods_mark_missing"), {"ids": list(ids), "now": now})
            cur = conn.cursor(row_factory=tuple_row)
            params = {"ids": list(ids), "now": now, "missing_before": now - GONE_AFTER}
            await cur.execute(q("vods_mark_gone"), params)
            return [str(r[0]) for r in await cur.fetchall()]

    async def vods_gone_unexpired(self, channel: str, now: datetime) -> list[str]:
        """Gone VODs of a channel that Twitch could still have: worth a second look."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("vods_gone_unexpired"), {"channel": channel, "now": now})
            return [str(r[0]) for r in await cur.fetchall()]

    # --- reading VODs -----------------------------------------------------------------------

    async def vods_list(
        self,
        *,
        channel: str | None,
        state: str | None,
        limit: int,
        offset: int,
        after: ListCursor | None = None,
    ) -> list[dict[str, Any]]:
        """A page of VODs in queue order, optionally of one channel and one state, after a cursor.

        Unprepared: psycopg prepares a statement after a few runs, and PostgreSQL's generic plan
        of the optional filters can scan every VOD (FIELD-NOTES); planned with its real values,
        each combination reads the index made for it. Each row carries `row_id` for the cursor.
        """
        params = {
            "channel": channel, "state": state, "limit": limit, "offset": offset,
            "after_priority": after.priority if after else None,
            "after_expiry": after.expiry if after else None,
            "after_id": after.row_id if after else None,
        }  # fmt: skip
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("vods_list"), params, prepare=False)
            return await cur.fetchall()

    async def vod_get(self, twitch_vod_id: str) -> dict[str, Any] | None:
        """Everything we store about one VOD, or None."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("vod_get"), {"id": twitch_vod_id})
            return await cur.fetchone()

    async def scrape_figures(self, hours: int = 48, timeout_s: float = 2.0) -> ScrapeFigures:
        """What `/metrics` reads from PostgreSQL, over one connection: the counts by state (kept
        by triggers), the VODs not archived yet that expire within `hours`, and the first such
        expiry (both through the partial index of the states not archived yet)."""
        counts = dict.fromkeys(VodState, 0)
        async with self._conn(timeout_s) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("vod_counts_by_state"))
            for state, n in await cur.fetchall():
                counts[VodState(state)] = int(n)
            await cur.execute(q("vods_expiring_soon"), {"hours": hours})
            expiring = await cur.fetchone()
            await cur.execute(q("vods_next_expiry"))
            first = await cur.fetchone()
        soon = int(expiring[0]) if expiring else 0
        return ScrapeFigures(counts, soon, first[0] if first else None)

    # --- downloads --------------------------------------------------------------------------

    async def download_claim(self, *, owner: str, lease_s: float) -> DownloadClaim | None:
        """Take the next VOD to download, in queue order; None when there is none."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("download_claim"), {"owner": owner, "lease_s": lease_s})
            row = await cur.fetchone()
        if row is None:
            return None
        return DownloadClaim(int(row[0]), str(row[1]), str(row[2]), row[3], row[4], int(row[5]),
                             str(row[6]), str(row[7]), bool(row[8]))  # fmt: skip

    async def download_next_due(self) -> float | None:
        """Seconds until a retry, a disk recheck or a lease of a download falls due; None: none."""
        return await self._seconds(q("download_next_due"))

    async def _seconds(self, query: LiteralString) -> float | None:
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(query)
            row = await cur.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def download_progress(
        self, row_id: int, *, owner: str, lease_s: float, progress: dict[str, Any]
    ) -> bool:
        """Store progress and renew the lease; False when the VOD was canceled or taken over."""
        params = {"id": row_id, "owner": owner, "lease_s": lease_s, "progress": Jsonb(progress)}
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = await conn.execute(q("download_progress"), params)
            return await cur.fetchone() is not None

    async def download_finish(self, row_id: int, *, owner: str, result: DownloadResult) -> bool:
        """Record how an attempt ended; False when this worker no longer owns the VOD."""
        params = {"id": row_id, "owner": owner, **dataclasses.asdict(result)}
        params["state"], params["download_state"] = result.state.value, result.download_state.value
        params["file_path"] = str(result.file_path) if result.file_path else None
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = await conn.execute(q("download_finish"), params)
            return await cur.fetchone() is not None

    async def download_release_previous(self, *, prefix: str, owner: str) -> list[str]:
        """Release the claims an earlier, killed run of this daemon left behind."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("download_release_previous"), {"prefix": prefix, "owner": owner})
            return [str(r[0]) for r in await cur.fetchall()]

    async def download_heartbeat(self, row_id: int, *, owner: str, lease_s: float) -> bool:
        """Renew one claim's lease; False when the VOD was canceled or taken over."""
        params = {"id": row_id, "owner": owner, "lease_s": lease_s}
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = await conn.execute(q("download_heartbeat"), params)
            return await cur.fetchone() is not None

    async def vod_state(self, row_id: int) -> str | None:
        """The state of one VOD row."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("vod_state"), {"id": row_id})
            row = await cur.fetchone()
            return str(row[0]) if row else None

    async def vods_waiting_for_disk(self, timeout_s: float = 2.0) -> int:
        """How many VODs wait for disk space."""
        async with self._conn(timeout_s) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("vods_waiting_for_disk"))
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def kv_ema(self, key: str, sample: float, alpha: float = 0.2) -> None:
        """Fold a sample into a moving average kept in `kv` (the runbook's avg_*_ms)."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("kv_ema"), {"key": key, "sample": sample, "alpha": alpha})
