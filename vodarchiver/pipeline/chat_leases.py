"""Which replica records which channel: the chat stage's lease slots (issue 14).

Replicas on one database would each open a connection to every channel. Instead a channel has
CHAT_REDUNDANCY slots (`chat_leases` rows), and a replica records it only while it holds one:
- **a pass** (every third of CHAT_LEASE, and at once when the stage's wishes change) gives up the
  channels no longer wanted, renews the rest, and tries to take a free or lapsed slot of each
  wanted channel it does not hold. A replica holds at most one slot of a channel;
- **a replica that stopped** loses its slots: a clean stop deletes them (the next pass of another
  replica takes them), a killed one's lease runs out and the replica waiting for it looks again
  right when it does (`next_wait_s`), so the takeover gap is at most the lease plus a pass;
- **a replica that lost its database** cannot know whether another took over: each held channel
  has a local deadline (the time its last successful renewal was *sent* plus the lease, which is
  never later than the lease the database recorded), and past it the channel counts as lost and
  its recorder stops. When the database answers again and the row is still ours, it is renewed;
- **a restarted daemon** deletes at start the slots its killed predecessor on the same host and
  DATA_DIR left (the owner prefix of `leased.Owner`), as the leased workers release its claims.
The owner written in each row is the process's `leased.Owner` token for `chat`, so `/status` and
the console name the replica recording each channel. Two replicas recording one channel
(`CHAT_REDUNDANCY=2`) store each message once: Twitch's message id is the table's key.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from vodarchiver.db.chat_lease_store import ChatLeaseStore, LeaseRow
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.logs import get_logger
from vodarchiver.pipeline.leased import Owner

MIN_WAIT_S = 0.05
PASS_TIMEOUT_S = 5.0


def slots_to_try(rows: Sequence[LeaseRow], channel: str, slots: int, me: str) -> list[int]:
    """The slots of `channel` this replica may try to take, in order.

    None when it has a row there already (its pass renews that one: one slot per replica), else
    every slot below `slots` that is free or whose lease ran out.
    """
    mine = [r for r in rows if r.channel == channel]
    if any(r.owner == me for r in mine):
        return []
    held = {r.slot for r in mine if r.valid}
    return [slot for slot in range(slots) if slot not in held]


def next_wait_s(
    *,
    lease_s: float,
    deadlines: Collection[float],
    waiting_for: Collection[float],
) -> float:
    """Seconds until the next pass: a third of the lease (renewals), but no later than the
    first local deadline of a lease we hold (so a lost database stops its recorder in time) nor
    the moment another replica's lease we wait for runs out (so a takeover is not a pass late)."""
    return max(MIN_WAIT_S, min((lease_s / 3, *deadlines, *waiting_for)))


class ChatLeases:
    """This replica's slots: takes, renews, gives up, and says which channels it may record."""

    def __init__(
        self,
        store: ChatLeaseStore,
        owner: Owner,
        *,
        lease_s: float,
        slots: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.owner = owner.token("chat")
        self._prefix = owner.prefix
        self._process = f"{owner.id}:"
        self.lease_s = lease_s
        self.slots = slots
        self._clock = clock
        self._until: dict[str, float] = {}  # each held channel's local deadline
        self._previous_released = False
        self.view: list[LeaseRow] = []  # the last listing, and when it was read
        self._view_at = 0.0
        self._log = get_logger("chat")
        self._outage_logged = False

    def held(self) -> set[str]:
        """The channels whose lease is ours and, as far as we can know, still running."""
        now = self._clock()
        return {c for c, until in self._until.items() if until > now}

    async def keep(self, wanted: Collection[str], channels: Sequence[str]) -> set[str]:
        """One pass over `channels`; returns the channels this replica may record now."""
        if self._expire():
            return self.held()  # stop those recorders now; the pass comes right after
        now = self._clock()
        # A pass that hangs must not keep a recorder past its deadline: it ends there.
        budget = min((PASS_TIMEOUT_S, *(u - now for u in self._until.values())))
        try:
            async with asyncio.timeout(max(budget, MIN_WAIT_S)):
                await self._pass(set(wanted), channels)
            self._outage_logged = False
        except (DatabaseUnavailable, TimeoutError) as exc:
            if not self._outage_logged:
                self._outage_logged = True
                self._log.warning("chat_lease_pass_failed", reason=str(exc) or "timeout",
                                  held=sorted(self.held()))  # fmt: skip
        self._expire()
        return self.held()

    async def _pass(self, wanted: set[str], channels: Sequence[str]) -> None:
        store, owner = self._store, self.owner
        if not self._previous_released:
            for channel, was in await store.release_previous(
                prefix=self._prefix, process=self._process
            ):
                self._log.info("chat_lease_released_previous", channel=channel, owner=was)
            self._previous_released = True
        unwanted = set(self._until) - wanted
        if unwanted:
            await store.release(owner, unwanted)
            for channel in unwanted:
                del self._until[channel]
                self._log.info("chat_lease_released", channel=channel)
        renewed: set[str] = set()
        if wanted:
            sent = self._clock()
            renewed = await store.renew(owner, wanted, self.lease_s)
            for channel in set(self._until) - renewed:
                del self._until[channel]
                self._log.warning("chat_lease_lost", channel=channel, reason="taken over")
            for channel in renewed:
                self._until[channel] = sent + self.lease_s
        self._view_at = self._clock()
        self.view = await store.leases(channels)
        for channel in sorted(wanted - renewed):
            for slot in slots_to_try(self.view, channel, self.slots, owner):
                sent = self._clock()
                if await store.claim(owner, channel, slot, self.lease_s):
                    self._until[channel] = sent + self.lease_s
                    previous = [r.owner for r in self.view if r.channel == channel
                                and r.slot == slot]  # fmt: skip
                    self._log.info("chat_lease_taken", channel=channel, slot=slot,
                                   previous=previous[0] if previous else None)  # fmt: skip
                    break

    def _expire(self) -> bool:
        """Forget the leases past their local deadline; True when there was one."""
        now = self._clock()
        expired = [c for c, until in self._until.items() if until <= now]
        for channel in expired:
            del self._until[channel]
            self._log.warning("chat_lease_lost", channel=channel,
                              reason="database unreachable for longer than the lease")  # fmt: skip
        return bool(expired)

    def next_wait_s(self, wanted: Collection[str]) -> float:
        """Seconds until the next pass should run (see `next_wait_s`)."""
        now = self._clock()
        waiting = [r.remaining_s - (now - self._view_at) + MIN_WAIT_S for r in self.view
                   if r.valid and r.channel in wanted and r.channel not in self._until]  # fmt: skip
        return next_wait_s(
            lease_s=self.lease_s,
            deadlines=[u - now for u in self._until.values()],
            waiting_for=waiting,
        )

    async def release_all(self) -> None:
        """A clean stop: give every slot up so another replica takes over at its next pass."""
        channels, self._until = set(self._until), {}
        if not channels:
            return
        with contextlib.suppress(DatabaseUnavailable, TimeoutError):
            async with asyncio.timeout(2.0):
                await self._store.release(self.owner, channels, timeout_s=2.0)
                self._log.info("chat_leases_released", channels=sorted(channels))

    def elsewhere(self) -> dict[str, list[str]]:
        """From the last pass: channels recorded by other replicas, and by whom."""
        found: dict[str, list[str]] = {}
        for r in self.view:
            if r.valid and r.owner != self.owner:
                found.setdefault(r.channel, []).append(r.owner)
        return found

    async def recorded_by(self, channels: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """`/status`'s `chat.recorded_by`: each channel's running leases, read now."""
        rows = await self._store.leases(channels)
        return {
            channel: [
                {"owner": r.owner, "slot": r.slot, "since": r.acquired_at.isoformat(),
                 "lease_until": r.lease_until.isoformat(), "this_replica": r.owner == self.owner}
                for r in rows if r.channel == channel and r.valid
            ]
            for channel in channels
        }  # fmt: skip
