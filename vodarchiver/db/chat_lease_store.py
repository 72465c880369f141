"""Chat leases in PostgreSQL: which replica records which channel (`chat_leases.sql`).

One method per named statement, errors translated as in `Store` (DatabaseUnavailable when
PostgreSQL does not answer). The decisions (which slot to take, when to look again) are
`pipeline.chat_leases`'s.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import tuple_row

from vodarchiver.db.queries import q
from vodarchiver.db.store import DEFAULT_TIMEOUT_S, Store


@dataclass(frozen=True)
class LeaseRow:
    """One slot of a channel as the database holds it."""

    channel: str
    slot: int
    owner: str
    acquired_at: datetime
    lease_until: datetime
    valid: bool  # the lease still runs (the database's clock)
    remaining_s: float  # until it runs out; negative once it has


class ChatLeaseStore(Store):
    """The named statements of `chat_leases`."""

    async def leases(
        self, channels: Collection[str], timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> list[LeaseRow]:
        """Every slot of these channels, held or lapsed."""
        async with self._conn(timeout_s) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("chat_leases_list"), {"channels": list(channels)})
            return [LeaseRow(str(c), int(s), str(o), a, u, bool(v), float(r))
                    for c, s, o, a, u, v, r in await cur.fetchall()]  # fmt: skip

    async def renew(
        self, owner: str, channels: Collection[str], lease_s: float,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> set[str]:  # fmt: skip
        """Extend our leases on these channels; the channels still ours."""
        params = {"owner": owner, "channels": list(channels), "lease_s": lease_s}
        async with self._conn(timeout_s) as conn:
            cur = await conn.execute(q("chat_leases_renew"), params)
            return {str(r[0]) for r in await cur.fetchall()}

    async def claim(
        self, owner: str, channel: str, slot: int, lease_s: float,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> bool:  # fmt: skip
        """Take a free or lapsed slot; False when another replica holds it."""
        params = {"owner": owner, "channel": channel, "slot": slot, "lease_s": lease_s}
        async with self._conn(timeout_s) as conn:
            cur = await conn.execute(q("chat_lease_claim"), params)
            return await cur.fetchone() is not None

    async def release(
        self, owner: str, channels: Collection[str], timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> set[str]:
        """Give these channels' leases up; the channels that were ours."""
        async with self._conn(timeout_s) as conn:
            cur = await conn.execute(
                q("chat_leases_release"), {"owner": owner, "channels": list(channels)}
            )
            return {str(r[0]) for r in await cur.fetchall()}

    async def release_previous(
        self, *, prefix: str, process: str, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> list[tuple[str, str]]:
        """Delete the slots a killed predecessor on this host and DATA_DIR left (channel, owner)."""
        async with self._conn(timeout_s) as conn:
            cur = await conn.execute(
                q("chat_leases_release_previous"), {"prefix": prefix, "process": process}
            )
            return [(str(c), str(o)) for c, o in await cur.fetchall()]
