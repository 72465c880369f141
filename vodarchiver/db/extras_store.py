"""The extras stage's view of PostgreSQL: one row per part and kind, claimed with a lease.

Same rules as `store.py` (one method per named query, psycopg errors translated by `pooled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg_pool
from psycopg.rows import dict_row

from vodarchiver.db.queries import q
from vodarchiver.db.store import pooled

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ExtraJob:
    """A claimed extra of one published part."""

    vod_row_id: int
    part: int
    kind: str  # thumbnail | captions
    attempts: int
    parts: int
    video_id: str
    file_path: Path | None
    start_s: float
    duration_s: float
    vod_id: str
    thumbnail_url: str | None


class ExtrasStore:
    """Named queries of the extras stage over the daemon's pool."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def enqueue(self, kinds: Sequence[str]) -> int:
        """Give every published part the extras of these kinds it does not have yet."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            return (await conn.execute(q("extras_enqueue"), {"kinds": list(kinds)})).rowcount

    async def claim(self, owner: str, prefix: str, lease_s: float,
                    kinds: Sequence[str]) -> ExtraJob | None:  # fmt: skip
        """The next due extra of these kinds, leased to `owner`, or None."""
        params = {"owner": owner, "prefix": prefix, "lease_s": lease_s, "kinds": list(kinds)}
        async with pooled(self._pool, TIMEOUT_S) as conn:
            row = await (await conn.execute(q("extras_claim"), params)).fetchone()
        if row is None:
            return None
        vod, part, kind, attempts, parts, video, path, start, length, vod_id, thumb, total = row
        return ExtraJob(int(vod), int(part), str(kind), int(attempts), int(parts), str(video),
                        Path(path) if path else None, float(start or 0),
                        float(length if length is not None else total or 0), str(vod_id),
                        thumb)  # fmt: skip

    async def finish(self, job: ExtraJob, owner: str, *, state: str, detail: str | None,
                     retry_s: float) -> None:  # fmt: skip
        """Record the extra's outcome (only while it is ours)."""
        params = {"vod_row_id": job.vod_row_id, "part": job.part, "kind": job.kind,
                  "owner": owner, "state": state, "detail": detail, "retry_s": retry_s}  # fmt: skip
        async with pooled(self._pool, TIMEOUT_S) as conn:
            await conn.execute(q("extras_finish"), params)

    async def refuse_all(self, kind: str, detail: str) -> int:
        """YouTube refuses this kind for the channel: every pending one is refused."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            cur = await conn.execute(q("extras_refuse_all"), {"kind": kind, "detail": detail})
            return cur.rowcount

    async def of_vod(self, vod_id: str) -> list[dict[str, Any]]:
        """A VOD's extras, part by part."""
        async with pooled(self._pool, TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("extras_of_vod"), {"vod_id": vod_id})
            return await cur.fetchall()
