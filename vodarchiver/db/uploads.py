"""The upload stage's view of PostgreSQL: tokens, quota, the breaker, pauses and parts.

One method per named query, errors translated as in `Store` (whose connection handling this
class shares): DatabaseUnavailable when PostgreSQL does not answer, DataRejected when it refuses
a value. Read-modify-write of shared values (the breaker) runs under a transaction-level advisory
lock, so replicas apply one transition at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row, tuple_row

from vodarchiver.db.queries import q
from vodarchiver.db.store import DEFAULT_TIMEOUT_S, Store
from vodarchiver.models import UploadClaim, UploadPart

# pg_advisory_xact_lock key of the breaker's read-modify-write ("vodarchiver circuit").
BREAKER_LOCK = 0x766F_6463_6972


@dataclasses.dataclass(frozen=True)
class TokenRow:
    """A stored credential, still sealed."""

    sealed: bytes | None
    scheme: str
    generation: int
    bootstrap_sha256: str | None
    revoked_at: datetime | None
    revoked_reason: str | None


class UploadStore(Store):
    """Named queries of the upload stage."""

    # --- kv -----------------------------------------------------------------------------------

    async def kv_set_many(self, values: Mapping[str, str]) -> None:
        """Set several `kv` values in one statement."""
        params = {"keys": list(values), "values": list(values.values())}
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("kv_set_many"), params)

    async def kv_delete(self, keys: Sequence[str]) -> None:
        """Remove `kv` keys."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("kv_delete"), {"keys": list(keys)})

    async def kv_transition(
        self, keys: Sequence[str], change: Callable[[dict[str, str]], dict[str, str] | None]
    ) -> dict[str, str]:
        """Read `keys`, apply `change` and write its result, all under the breaker's lock.

        Returns the values in force afterwards. `change` returning None writes nothing.
        """
        async with self._conn(DEFAULT_TIMEOUT_S) as conn, conn.transaction():
            await conn.execute(q("advisory_xact_lock"), {"lock": BREAKER_LOCK})
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("kv_get_many"), {"keys": list(keys)})
            current = {str(k): str(v) for k, v in await cur.fetchall()}
            new = change(current)
            if new is None:
                return current
            await conn.execute(q("kv_set_many"), {"keys": list(new), "values": list(new.values())})
            return {**current, **new}

    # --- quota --------------------------------------------------------------------------------

    async def quota_charge(self, key: str, units: int, budget: int) -> int | None:
        """Spend `units` if the day's budget holds them: the units used now, or None."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("quota_charge"), {"key": key, "units": units, "budget": budget})
            row = await cur.fetchone()
            return int(row[0]) if row else None

    async def quota_exhaust(self, key: str, budget: int) -> None:
        """Record that a bucket's day is spent."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("quota_exhaust"), {"key": key, "budget": budget})

    # --- tokens -------------------------------------------------------------------------------

    async def token_get(self, provider: str, channel: str) -> TokenRow | None:
        """The stored credential of a provider and channel, sealed."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("token_get"), {"provider": provider, "channel": channel})
            row = await cur.fetchone()
        if row is None:
            return None
        sealed = bytes(row[0]) if row[0] is not None else None
        return TokenRow(sealed, str(row[1]), int(row[2]), row[3], row[4], row[5])

    async def token_put(
        self, provider: str, channel: str, *, sealed: bytes, scheme: str,
        bootstrap_sha256: str | None, scopes: str | None,
    ) -> int:  # fmt: skip
        """Store a token given by the operator; its generation."""
        params = {"provider": provider, "channel": channel, "sealed": sealed, "scheme": scheme,
                  "bootstrap_sha256": bootstrap_sha256, "scopes": scopes}  # fmt: skip
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("token_put"), params)
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def token_replace(
        self, provider: str, channel: str, *, rotate: bool, sealed: bytes, scheme: str,
        generation: int, expires_at: datetime | None,
    ) -> int | None:  # fmt: skip
        """A rotated refresh token, or a fresh access token, if `generation` is still current."""
        params = {"provider": provider, "channel": channel, "sealed": sealed, "scheme": scheme,
                  "generation": generation, "expires_at": expires_at}  # fmt: skip
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("token_rotate") if rotate else q("token_save_access"), params)
            row = await cur.fetchone()
            return int(row[0]) if row else None

    async def token_revoke(self, provider: str, channel: str, generation: int, reason: str) -> None:
        """Mark a generation refused, so every replica and the next start know."""
        params = {"provider": provider, "channel": channel, "generation": generation,
                  "reason": reason}  # fmt: skip
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("token_revoke"), params)

    # --- claims -------------------------------------------------------------------------------

    async def upload_claim(self, *, owner: str, lease_s: float) -> UploadClaim | None:
        """Take the next downloaded VOD to publish; None when there is none."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("upload_claim"), {"owner": owner, "lease_s": lease_s})
            row = await cur.fetchone()
        return None if row is None else UploadClaim.from_row(row)

    async def upload_next_due(self) -> float | None:
        """Seconds until an upload retry or an upload's lease falls due; None: none."""
        return await self._seconds(q("upload_next_due"))

    async def _returning(self, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(query, params)
            return await cur.fetchall()

    async def upload_heartbeat(self, row_id: int, *, owner: str, lease_s: float) -> bool:
        """Renew an upload's lease; False when it was taken over or canceled."""
        rows = await self._returning(
            q("upload_heartbeat"), {"id": row_id, "owner": owner, "lease_s": lease_s}
        )
        return bool(rows)

    async def upload_release_previous(self, *, prefix: str, owner: str) -> list[str]:
        """Release the uploads an earlier, killed run of this daemon held."""
        rows = await self._returning(
            q("upload_release_previous"), {"prefix": prefix, "owner": owner}
        )
        return [str(r[0]) for r in rows]

    async def upload_finish(
        self, row_id: int, *, owner: str, state: str, failed: int,
        next_attempt_at: datetime | None, error: str | None,
    ) -> bool:  # fmt: skip
        """Record an attempt that did not publish; False when we no longer own the VOD."""
        params = {"id": row_id, "owner": owner, "state": state, "failed": failed,
                  "next_attempt_at": next_attempt_at, "error": error}  # fmt: skip
        return bool(await self._returning(q("upload_finish"), params))

    async def upload_done(self, row_id: int, *, owner: str, youtube_url: str) -> float | None:
        """Mark the VOD published; seconds since it was discovered, or None if not ours."""
        rows = await self._returning(
            q("upload_done"), {"id": row_id, "owner": owner, "youtube_url": youtube_url}
        )
        return float(rows[0][0]) if rows else None

    async def vods_auth(self, *, waiting: bool) -> list[str]:
        """Move every VOD waiting to be published into (or out of) `waiting_for_auth`."""
        query = q("vods_auth_wait") if waiting else q("vods_auth_resume")
        rows = await self._returning(query, {})
        return [str(r[0]) for r in rows]

    # --- parts --------------------------------------------------------------------------------

    async def upload_parts(self, row_id: int) -> list[UploadPart]:
        """A VOD's recorded parts, in order."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("upload_parts"), {"id": row_id})
            return [UploadPart.from_row(r) for r in await cur.fetchall()]

    async def upload_parts_insert(self, row_id: int, parts: Sequence[UploadPart]) -> None:
        """Record the plan of a VOD's parts (once)."""
        params: dict[str, Any] = {"id": row_id, "parts": len(parts)}
        for name in ("part", "file_path", "file_size", "fingerprint", "start_s", "duration_s",
                     "marker"):  # fmt: skip
            params[name] = [getattr(p, name) for p in parts]
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("upload_parts_insert"), params)

    async def _part_update(self, query: str, row_id: int, part: int, **values: Any) -> None:
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(query, {"id": row_id, "part": part, **values})

    async def upload_session_set(self, row_id: int, part: int, uri: str, title: str) -> None:
        """Remember a new session before its first byte is sent."""
        await self._part_update(q("upload_session_set"), row_id, part, session_uri=uri, title=title)

    async def upload_session_clear(self, row_id: int, part: int) -> None:
        """Forget an expired session."""
        await self._part_update(q("upload_session_clear"), row_id, part)

    async def upload_progress(self, row_id: int, part: int, confirmed: int, sent: int) -> None:
        """What YouTube confirmed, and the bytes sent since the last write."""
        await self._part_update(q("upload_progress"), row_id, part, confirmed=confirmed, sent=sent)

    async def upload_video_set(
        self, row_id: int, part: int, video_id: str, upload_status: str | None, *, adopted: bool
    ) -> None:
        """The part is a video on YouTube."""
        await self._part_update(q("upload_video_set"), row_id, part, video_id=video_id,
                                upload_status=upload_status, adopted=adopted)  # fmt: skip

    async def upload_status_set(
        self, row_id: int, part: int, upload_status: str, reason: str | None
    ) -> None:
        """What `videos.list` says about the part's video."""
        await self._part_update(q("upload_status_set"), row_id, part,
                                upload_status=upload_status, reason=reason)  # fmt: skip

    async def upload_playlist_added(self, row_id: int, part: int) -> None:
        """The part's video is in the channel's playlist."""
        await self._part_update(q("upload_playlist_added"), row_id, part)

    async def history_to_delete(self, row_id: int) -> list[dict[str, Any]]:
        """Earlier generations' videos the operator asked to delete and still on YouTube."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("history_to_delete"), {"id": row_id})
            return list(await cur.fetchall())

    async def history_deleted(self, row_id: int, generation: int, part: int) -> None:
        """An earlier generation's video is deleted on YouTube."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("history_deleted"),
                               {"id": row_id, "generation": generation, "part": part})  # fmt: skip

    async def uploads_rejected(self) -> list[dict[str, Any]]:
        """Videos YouTube rejected or failed, for /status."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("uploads_rejected"))
            return await cur.fetchall()

    async def vod_uploads(self, twitch_vod_id: str) -> list[dict[str, Any]]:
        """A VOD's parts as the API shows them."""
        async with self._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("vod_uploads"), {"id": twitch_vod_id})
            return await cur.fetchall()
