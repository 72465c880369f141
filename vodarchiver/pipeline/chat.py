"""The chat stage: which channels to record, their placeholders, and reconciliation.

Every CHAT_POLL_INTERVAL it asks Helix which channels are live (`/streams?user_login=`), folds
each answer into `chat_rules.next_live` and carries out the decision: a live stream opens its
placeholder (a `chat_streams` row) and, with CHAT_AUTO_START=1, starts the channel's recorder; a
new stream id switches placeholders; offline (after the grace) closes the placeholder and stops
the recorder. In the runbook's manual form the recorder of TWITCH_CHANNEL runs all the time and
Helix, when it can be asked, only names the placeholder. Then it reconciles: each placeholder
whose VOD has appeared is moved into it (offsets shifted, one transaction, idempotent), messages
recorded without a stream are attached by time, and placeholders overdue after
VOD_RECONCILE_WINDOW are counted and logged once. The writer and every recorder are tasks of this
stage; if one of them dies, the stage dies with it and the supervisor restarts it.

Across replicas (`chat_leases.py`): the channels the stage *wants* (auto start: those live;
the runbook's form: TWITCH_CHANNEL) are recorded only while this replica holds one of their
lease slots. A lease pass runs every third of CHAT_LEASE and at once when a channel goes live
or offline; its answer starts the recorders of the channels held and stops every other one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from vodarchiver.db.chat_store import ChatStore
from vodarchiver.errors import (
    DatabaseUnavailable,
    HelixDataError,
    HelixRequestError,
    TransientError,
)
from vodarchiver.logs import get_logger
from vodarchiver.metrics import Metrics
from vodarchiver.models import CheckResult
from vodarchiver.pipeline.chat_leases import ChatLeases
from vodarchiver.pipeline.chat_rules import (
    UNKNOWN,
    Action,
    LiveState,
    LiveStream,
    next_live,
    shift_ms,
)
from vodarchiver.pipeline.chat_writer import ChatWriter
from vodarchiver.twitch.chat import ChatRecorder
from vodarchiver.twitch.helix import HelixClient


class ChatStage:
    """Recorders, placeholders and reconciliation for the configured channels."""

    def __init__(
        self,
        *,
        channels: Sequence[str],
        auto_start: bool,
        helix: HelixClient | None,
        store: ChatStore,
        writer: ChatWriter,
        metrics: Metrics,
        recorder: Callable[[str], ChatRecorder],
        leases: ChatLeases,
        poll_interval_s: float,
        grace_s: float,
        window_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._channels = tuple(channels)
        self._auto = auto_start
        self._helix = helix
        self._store = store
        self.writer = writer
        self._metrics = metrics
        self._new_recorder = recorder
        self.leases = leases
        self._lease_lock = asyncio.Lock()
        self._interval = poll_interval_s
        self._grace = grace_s
        self._window = window_s
        self._clock = clock
        self._live = {c: LiveState() for c in self._channels}
        self.recorders: dict[str, ChatRecorder] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._overdue_logged: set[str] = set()
        self._log = get_logger("chat")

    async def run_forever(self) -> None:
        """Poll, reconcile, keep the leases and supervise the recorders until cancelled."""
        writer = asyncio.create_task(self.writer.run_forever(), name="chat-writer")
        self._tasks["<writer>"] = writer
        keeper = asyncio.create_task(self._keep_leases(), name="chat-leases")
        self._tasks["<leases>"] = keeper
        try:
            while True:
                self._raise_if_a_task_died()
                await self.poll_once()
                await self.reconcile_once()
                await asyncio.sleep(self._interval)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            self._tasks.pop("<leases>", None)
            recorders = [c for c in self._tasks if not c.startswith("<")]
            await asyncio.gather(*(self.stop_recorder(c) for c in recorders),
                                 return_exceptions=True)  # fmt: skip
            await self.leases.release_all()  # another replica takes over at its next pass
            writer.cancel()  # it flushes what it holds before it ends
            await asyncio.gather(writer, return_exceptions=True)
            self._tasks.pop("<writer>", None)

    def _raise_if_a_task_died(self) -> None:
        for name, task in self._tasks.items():
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"chat task {name} died") from task.exception()

    # --- recorders --------------------------------------------------------------------------

    def start_recorder(self, channel: str) -> ChatRecorder:
        """Start recording a channel (no-op when it is already recorded)."""
        if channel in self._tasks and not self._tasks[channel].done():
            return self.recorders[channel]
        recorder = self._new_recorder(channel)
        state = self._live.get(channel)
        recorder.stream_id = state.stream.stream_id if state and state.stream else None
        self.recorders[channel] = recorder
        self._tasks[channel] = asyncio.create_task(recorder.run(), name=f"chat-{channel}")
        self._log.info("chat_recording_started", channel=channel, stream_id=recorder.stream_id)
        return recorder

    async def stop_recorder(self, channel: str, reason: str = "stopped") -> None:
        """Stop recording a channel; what it received is still written."""
        task = self._tasks.pop(channel, None)
        self.recorders.pop(channel, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._log.info("chat_recording_stopped", channel=channel, reason=reason)

    # --- leases -----------------------------------------------------------------------------

    def wanted(self) -> set[str]:
        """The channels this stage would record if it held their lease."""
        if not self._auto:
            return set(self._channels)
        return {c for c, state in self._live.items() if state.stream is not None}

    async def sync_leases(self) -> float:
        """One lease pass, then the recorders made to match; seconds until the next pass."""
        async with self._lease_lock:
            wanted = self.wanted()
            held = await self.leases.keep(wanted, self._channels) & wanted
            for channel in [c for c in self._tasks if not c.startswith("<") and c not in held]:
                await self.stop_recorder(channel, reason="lease_lost" if channel in wanted
                                         else "offline")  # fmt: skip
            for channel in sorted(held):
                self.start_recorder(channel)
            return self.leases.next_wait_s(wanted)

    async def _keep_leases(self) -> None:
        while True:
            wait = await self.sync_leases()
            await asyncio.sleep(wait)

    # --- liveness ---------------------------------------------------------------------------

    async def poll_once(self) -> None:
        """Ask Helix who is live and carry out each channel's decision."""
        if self._helix is None:
            return
        answers: dict[str, LiveStream | object | None]
        try:
            streams = await self._helix.live_streams_by_login(self._channels)
        except (TransientError, HelixDataError, HelixRequestError) as exc:
            self._log.warning("chat_live_check_failed", reason=str(exc))
            answers = dict.fromkeys(self._channels, UNKNOWN)
        else:
            now = self._clock()
            answers = {
                c: LiveStream(s.id, s.started_at or now) if (s := streams.get(c)) else None
                for c in self._channels
            }
        for channel in self._channels:
            try:
                await self._apply(channel, answers[channel])
            except DatabaseUnavailable as exc:
                self._log.warning("chat_placeholder_write_failed", channel=channel, reason=str(exc))

    async def _apply(self, channel: str, answer: LiveStream | object | None) -> None:
        before = self._live[channel]
        now = self._clock()
        after, action = next_live(before, answer, now=now, grace_s=self._grace)
        if action is Action.NOTHING:
            self._live[channel] = after
            return
        if before.stream is not None and action in (Action.SWITCH, Action.STOP):
            await self._store.stream_close(before.stream.stream_id, now)
        if after.stream is not None:
            await self._store.stream_open(after.stream.stream_id, channel, after.stream.started_at)
        self._live[channel] = after  # only once the placeholder rows are written
        stream_id = after.stream.stream_id if after.stream else None
        self._log.info("chat_stream_" + action.value, channel=channel, stream_id=stream_id,
                       previous=before.stream.stream_id if before.stream else None)  # fmt: skip
        if action in (Action.START, Action.STOP) and self._auto:
            await self.sync_leases()  # at once: a stream's first lines are not a pass late
        if channel in self.recorders:
            self.recorders[channel].stream_id = stream_id

    # --- reconciliation ---------------------------------------------------------------------

    async def reconcile_once(self) -> None:
        """Move placeholders into their VODs, attach stray messages, report overdue ones."""
        try:
            for c in await self._store.reconcile_candidates(self._window):
                shift = shift_ms(c.stream_started_at, c.vod_started_at)
                moved = await self._store.reconcile(c.stream_id, c.vod_row_id, shift)
                if moved is not None:
                    self._log.info("chat_reconciled", stream_id=c.stream_id,
                                   vod_row_id=c.vod_row_id, shift_ms=shift,
                                   messages=moved)  # fmt: skip
            attached = await self._store.attach_orphans()
            if attached:
                self._log.info("chat_orphans_attached", messages=attached)
            placeholders = await self._store.placeholders(self._window)
        except DatabaseUnavailable as exc:
            self._log.warning("chat_reconcile_failed", reason=str(exc))
            return
        overdue = [p for p in placeholders if p["overdue"]]
        self._metrics.chat_placeholders_overdue.set(len(overdue))
        for p in overdue:
            if p["stream_id"] not in self._overdue_logged:
                self._overdue_logged.add(p["stream_id"])
                self._log.warning("chat_placeholder_unreconciled", stream_id=p["stream_id"],
                                  channel=p["channel"], messages=p["messages"])  # fmt: skip

    # --- reporting --------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """The `chat` part of `/status`: recorders and the placeholders still without a VOD."""
        placeholders = await self._store.placeholders(self._window)
        return {
            "owner": self.leases.owner,
            "redundancy": self.leases.slots,
            "lease_s": self.leases.lease_s,
            "recorded_by": await self.leases.recorded_by(self._channels),
            "recorders": {
                channel: {
                    "connected": r.status.connected,
                    "stream_id": r.stream_id,
                    "login_failed": r.status.login_failed,
                    "reconnections": r.status.reconnections,
                    "rejected_lines": r.status.rejected_lines,
                }
                for channel, r in self.recorders.items()
            },
            "unreconciled_placeholders": [
                {k: v.isoformat() if isinstance(v, datetime) else v for k, v in p.items()}
                for p in placeholders
            ],
            "overdue_placeholders": sum(1 for p in placeholders if p["overdue"]),
        }


class ChatCheck:
    """`/readyz`: chat is not ready while Twitch refuses a recorder's login."""

    name = "chat"

    def __init__(self, stage: ChatStage) -> None:
        self._stage = stage

    async def check(self) -> CheckResult:
        failed = {c: r.status.login_failed for c, r in self._stage.recorders.items()
                  if r.status.login_failed}  # fmt: skip
        if failed:
            return CheckResult(
                False, "; ".join(f"{c}: login refused ({why})" for c, why in failed.items())
            )
        connected = sorted(c for c, r in self._stage.recorders.items() if r.status.connected)
        if connected:
            return CheckResult(True, f"recording {', '.join(connected)}")
        elsewhere = sorted(set(self._stage.leases.elsewhere()) & self._stage.wanted())
        if elsewhere:
            return CheckResult(True, f"recorded by another replica: {', '.join(elsewhere)}")
        return CheckResult(True, "no channel live")
