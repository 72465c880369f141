"""The operator's actions, as the HTTP API and the CLI offer them, carried out on the lifecycle.

Each action on a VOD is a lifecycle event (`lifecycle.Action`): the lifecycle decides whether the
VOD's state allows it, `db/actions.py` writes it with its audit row in one transaction, and this
module does what follows in the running daemon: a cancel or skip stops an attempt running here
(other replicas see their claim gone at their next progress write or heartbeat) and removes
partial files nobody will resume; a restore of a gone VOD first asks Helix whether Twitch still
lists it. Actions on the whole daemon (circuit reset, uploads pause and resume) write the same
`kv` keys the runbook's SQL does, and are audited too. `monitor()` is `/admin/monitor`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from vodarchiver.db.actions import ActionOutcome, ActionStore, Actor
from vodarchiver.db.uploads import UploadStore
from vodarchiver.errors import DatabaseUnavailable, TransientError
from vodarchiver.lifecycle import Action, VodState
from vodarchiver.logs import get_logger
from vodarchiver.pipeline.leased import monitor_keys
from vodarchiver.pipeline.upload_shared import CIRCUIT_KEYS, PAUSE_KEYS

STAGES = ("download", "upload")
# A pause with no end given lasts until it is resumed (a far date keeps the `kv` format).
PAUSE_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


class Workers(Protocol):
    """What the operator needs of a stage's leased workers."""

    def stop(self, vod_id: str) -> bool: ...

    def wake(self) -> None: ...


# Is the VOD still listed by Twitch? True, False, or None when Helix cannot say.
TwitchLookup = Callable[[str], Awaitable[bool | None]]
# Remove a VOD's partial download (channel, vod id).
RemoveFiles = Callable[[str, str], None]


class Operator:
    """Operator actions over the store, the running workers and Helix."""

    def __init__(
        self,
        store: UploadStore,
        *,
        workers: Sequence[Workers] = (),
        remove_files: RemoveFiles | None = None,
        on_twitch: TwitchLookup | None = None,
        uploads_status: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self.actions = ActionStore(store)
        self._workers = workers
        self._remove_files = remove_files
        self._on_twitch = on_twitch
        self._uploads_status = uploads_status
        self._clock = clock
        self._log = get_logger("operator")

    async def act(
        self, vod_id: str, action: Action, actor: Actor, *, priority: int = 0,
        delete_old: bool = False,
    ) -> ActionOutcome:  # fmt: skip
        """Carry out `action` on the VOD; the outcome says what happened or why not."""
        on_twitch = None
        if action is Action.RESTORE:
            current = await self.actions.vod_state(vod_id)
            if current is not None and current[0] is VodState.GONE:
                on_twitch = await self._lookup(vod_id)
        outcome = await self.actions.act(
            vod_id, action, actor, now=self._clock(), priority=priority, delete_old=delete_old,
            on_twitch=on_twitch,
        )  # fmt: skip
        if outcome.record is None:
            return outcome
        if action in (Action.CANCEL, Action.SKIP):
            stopped = any(w.stop(vod_id) for w in self._workers)
            # Nobody will resume these fragments; a verified download is kept for a restore.
            partial = outcome.state in (
                VodState.LIVE,
                VodState.QUEUED,
                VodState.WAITING_FOR_DISK,
                VodState.FAILED_RETRYABLE,
                VodState.FAILED_PERMANENT,
            )
            if not stopped and partial and not outcome.file_kept and self._remove_files:
                self._remove_files(outcome.channel, vod_id)
        else:
            for w in self._workers:
                w.wake()
        self._log.info("vod_action", vod_id=vod_id, action=action.value,
                       from_state=outcome.state, to_state=outcome.record.target,
                       actor=actor.name)  # fmt: skip
        return outcome

    async def _lookup(self, vod_id: str) -> bool | None:
        if self._on_twitch is None:
            return None
        try:
            return await self._on_twitch(vod_id)
        except TransientError as exc:
            self._log.warning("restore_lookup_failed", vod_id=vod_id, reason=str(exc))
            return None

    # --- actions on the whole daemon ----------------------------------------------------------

    async def circuit_reset(self, actor: Actor) -> None:
        """Close the breaker: the runbook's recipe (delete its three keys), audited."""
        await self._store.kv_delete(CIRCUIT_KEYS)
        await self.actions.audit("circuit_reset", actor)
        self._log.info("circuit_reset", actor=actor.name)

    async def uploads_pause(self, actor: Actor, *, until: datetime | None, reason: str) -> None:
        """Pause every upload worker of every replica until `until` (or until resumed)."""
        end = until or PAUSE_FOREVER
        await self._store.kv_set_many(
            {PAUSE_KEYS[0]: end.isoformat(), PAUSE_KEYS[1]: reason}
        )  # fmt: skip
        await self.actions.audit("uploads_pause", actor,
                                 detail={"until": end.isoformat(), "reason": reason})  # fmt: skip
        self._log.info("uploads_paused", reason=reason, until=end.isoformat(), actor=actor.name)

    async def uploads_resume(self, actor: Actor) -> None:
        """Lift any upload pause (quota, upload limit or an operator's)."""
        await self._store.kv_delete(PAUSE_KEYS)
        await self.actions.audit("uploads_resume", actor)
        for w in self._workers:
            w.wake()
        self._log.info("uploads_resumed", after="operator", actor=actor.name)

    # --- the monitor --------------------------------------------------------------------------

    async def monitor(self) -> dict[str, Any]:
        """`/admin/monitor`: per stage the last claim, success and failure, the workers and
        their leases, the circuit, the quota and the pauses."""
        keys = [k for stage in STAGES for k in monitor_keys(stage)]
        kv = await self._store.kv_get_many([*keys, *CIRCUIT_KEYS, *PAUSE_KEYS, "last_process_run"])
        stages = {
            stage: dict(zip(("last_claim_at", "last_success_at", "last_failure_at"),
                            (kv.get(k) for k in monitor_keys(stage)), strict=True))
            for stage in STAGES
        }  # fmt: skip
        claims = [_json(r) for r in await self.actions.claims()]
        channels = [_json(r) for r in await self.actions.channel_leases()]
        uploads: dict[str, Any] = {"enabled": False}
        if self._uploads_status is not None:
            with contextlib.suppress(DatabaseUnavailable):
                uploads = await self._uploads_status()
        return {
            "stages": stages,
            "workers": claims,
            "discovery": channels,
            "circuit": {k: kv.get(k) for k in CIRCUIT_KEYS},
            "pause": {k: kv.get(k) for k in PAUSE_KEYS},
            "last_process_run": kv.get("last_process_run"),
            "quota": uploads.get("quota"),
            "uploads": uploads,
        }


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
