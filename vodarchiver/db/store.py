"""The daemon's view of PostgreSQL: one method per named query, translating psycopg errors.

Every method raises DatabaseUnavailable (transient) when PostgreSQL does not answer in time or
the connection breaks, so callers above the adapters never see psycopg exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import tuple_row

from vodarchiver.db.queries import q
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.models import VodState

DEFAULT_TIMEOUT_S = 5.0


class Store:
    """Named queries over a connection pool."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _conn(self, timeout_s: float) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with asyncio.timeout(timeout_s), self._pool.connection(timeout=timeout_s) as conn:
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout, TimeoutError) as exc:
            raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc

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
