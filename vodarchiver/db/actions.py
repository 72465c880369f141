"""Operator actions in PostgreSQL: one transaction each, the VOD locked, the audit row written.

The decision is the lifecycle's (`lifecycle.apply`); this module only reads the facts it needs,
writes the transition it returns with the statement that implements it, and records who asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from vodarchiver import lifecycle
from vodarchiver.db.queries import q
from vodarchiver.db.store import DEFAULT_TIMEOUT_S, Store
from vodarchiver.lifecycle import Action, TransitionRecord, VodFacts, VodState


@dataclass(frozen=True)
class ActionOutcome:
    """What an action did: the transition, or why it was refused (`record` None), or no VOD."""

    found: bool
    state: VodState | None = None  # the state before (refused: the state it is in)
    record: TransitionRecord | None = None
    allowed: tuple[str, ...] = ()
    reason: str = ""
    channel: str = ""
    generation: int | None = None
    file_kept: bool = False  # a verified download was on disk


@dataclass(frozen=True)
class Actor:
    """Who asked, for the audit table: token, session, loopback, cli, sql or system."""

    name: str
    corr: str | None = None


class ActionStore:
    """Operator actions, the audit table, and the monitor's queries."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def vod_state(self, twitch_vod_id: str) -> tuple[VodState, str] | None:
        """The VOD's state and channel, without locking (to decide whether Helix must be asked)."""
        row = await self._store.vod_get(twitch_vod_id)
        return (VodState(row["state"]), str(row["channel"])) if row else None

    async def act(
        self,
        twitch_vod_id: str,
        action: Action,
        actor: Actor,
        *,
        now: datetime,
        priority: int = 0,
        delete_old: bool = False,
        on_twitch: bool | None = None,
    ) -> ActionOutcome:
        """Apply `action` to the VOD if its state allows it, and record it."""
        async with self._store._conn(DEFAULT_TIMEOUT_S) as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q("vod_for_action"), {"id": twitch_vod_id})
            row = await cur.fetchone()
            if row is None:
                return ActionOutcome(found=False)
            facts = VodFacts.from_row(row, now)
            facts = VodFacts(facts.state, facts.file_kept, on_twitch, facts.retry_pending)
            detail: dict[str, Any] = {}
            if action is Action.PRIORITY:
                detail = {"priority": priority, "previous_priority": row["priority"]}
            if action is Action.REPROCESS:
                detail = {"delete_old": delete_old, "generation": int(row["generation"]) + 1}
            done = lifecycle.apply(action.event, facts, now=now, detail=detail)
            if done is None:
                return ActionOutcome(
                    found=True, state=facts.state, channel=str(row["channel"]),
                    allowed=tuple(a.value for a in lifecycle.allowed_actions(facts)),
                    reason=lifecycle.refusal(action, facts),
                )  # fmt: skip
            params = {"id": row["id"], "from_state": facts.state.value,
                      "to_state": done.target.value}  # fmt: skip
            await _write(conn, action, params, priority=priority, delete_old=delete_old)
            await conn.execute(q("audit_insert"), {
                "vod_id": twitch_vod_id, "action": action.value, "from_state": facts.state.value,
                "to_state": done.target.value, "actor": actor.name, "corr": actor.corr,
                "detail": Jsonb(detail),
            })  # fmt: skip
        generation = int(row["generation"]) + (1 if action is Action.REPROCESS else 0)
        return ActionOutcome(found=True, state=facts.state, record=done,
                             channel=str(row["channel"]), generation=generation,
                             file_kept=facts.file_kept)  # fmt: skip

    async def audit(
        self, action: str, actor: Actor, *, detail: dict[str, Any] | None = None
    ) -> None:
        """Record an action on the whole daemon (circuit reset, pause, resume)."""
        async with self._store._conn(DEFAULT_TIMEOUT_S) as conn:
            await conn.execute(q("audit_insert"), {
                "vod_id": None, "action": action, "from_state": None, "to_state": None,
                "actor": actor.name, "corr": actor.corr, "detail": Jsonb(detail or {}),
            })  # fmt: skip

    async def audit_page(
        self, *, vod_id: str | None, before: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """The audit table newest first, `limit` rows older than the id `before`."""
        params = {"vod_id": vod_id, "before": before or 2**62, "limit": limit}
        return await self._rows(q("audit_page"), params)

    async def history(self, twitch_vod_id: str) -> list[dict[str, Any]]:
        """Earlier generations' videos of a VOD."""
        return await self._rows(q("vod_history"), {"id": twitch_vod_id})

    async def claims(self) -> list[dict[str, Any]]:
        """Every VOD a worker holds, with its owner and lease."""
        return await self._rows(q("monitor_claims"), {})

    async def channel_leases(self) -> list[dict[str, Any]]:
        """Discovery's channels with their lease and last pass."""
        return await self._rows(q("monitor_channel_leases"), {})

    async def _rows(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._store._conn(DEFAULT_TIMEOUT_S) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query, params)
            return list(await cur.fetchall())


async def _write(
    conn: psycopg.AsyncConnection[Any],
    action: Action,
    params: dict[str, Any],
    *,
    priority: int,
    delete_old: bool,
) -> None:
    """The statement that writes this action's transition (each names it in queries.sql)."""
    match action:
        case Action.CANCEL | Action.SKIP:
            await conn.execute(q("vod_stop"), params)
        case Action.RESTORE:
            await conn.execute(q("vod_restore"), params)
        case Action.RETRY:
            await conn.execute(q("vod_retry_now"), params)
        case Action.REPROCESS:
            await conn.execute(q("vod_archive_parts"), {**params, "delete_old": delete_old})
            await conn.execute(q("vod_reprocess"), {**params, "delete_old": delete_old})
        case Action.PRIORITY:
            await conn.execute(q("vod_priority"), {**params, "priority": priority})
