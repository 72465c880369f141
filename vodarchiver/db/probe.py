"""The liveness probe's own database connection.

`/healthz` must answer quickly in both directions: at once when PostgreSQL is gone (a probe has a
timeout of its own, often 1 s), and as soon as it is back. A ping through the pool does neither:
with PostgreSQL down, the pool waits out its reconnection backoff until the caller's timeout. So
the probe keeps one connection of its own, reconnects directly when it is broken (a refused
connection fails in milliseconds), and is never blocked behind the pool's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg

from vodarchiver.db.queries import q
from vodarchiver.errors import DatabaseUnavailable


class DatabaseProbe:
    """Pings PostgreSQL over a dedicated connection, reopening it whenever it breaks."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def ping(self, timeout_s: float = 1.0) -> None:
        """One round trip within `timeout_s`, or DatabaseUnavailable."""
        try:
            async with asyncio.timeout(timeout_s), self._lock:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    await self._discard()
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._conninfo,
                        autocommit=True,
                        connect_timeout=max(2, round(timeout_s)),
                        application_name="vodarchiver-probe",
                    )
                await self._conn.execute(q("ping"))
        except (psycopg.Error, TimeoutError) as exc:
            await self._discard()
            raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def aclose(self) -> None:
        """Close the probe's connection."""
        await self._discard()
