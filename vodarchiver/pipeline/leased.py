"""One leased-worker mechanism for every stage that claims VODs (downloads, uploads).

A stage supplies only what differs: how it takes the next VOD (`next`: a claim, or how long to
wait), one attempt on it (`attempt`, which records its own outcome), and what a stop means
(`interrupted` on shutdown, `stopped` when the claim was lost or the VOD canceled). Everything
else is here, once:
- **the owner identity** (`Owner`): `<host>:<DATA_DIR>:<pid>:<start>` for the process, shared
  by discovery's channel leases; each claim gets its own token under it, so a worker whose lease
  was taken over can never write over the new owner, even from the same process; a restarted
  daemon on the same host and DATA_DIR recognises its killed predecessor's claims by the prefix;
- **the heartbeat**: the lease (`claim_until`) is renewed every third of its length for the whole
  attempt; a renewal that finds the row no longer ours (canceled, skipped, taken over) stops the
  attempt at once;
- **stops**: a stop asked for a VOD running here (an operator's cancel, a progress write that
  found the claim gone) cancels its attempt task; the stage's `stopped` then decides what the
  files become. A shutdown instead calls `interrupted`, which gives the VOD back;
- **the monitor's times**: the last claim, success and failure of each stage, in `kv`, so
  `/admin/monitor` shows them for every replica;
- **waiting**: a worker that found nothing sleeps until a wake-up (`wake`: the daemon's LISTEN
  connection heard that a VOD became claimable, db/wakeups.py, or an in-process hand-off), the
  stage's next due time (a retry, a lease) or its fallback poll, whichever comes first; while
  no wake-ups can arrive (`heard` is false: the LISTEN connection is down) it polls every
  UNHEARD_POLL_S instead. Each worker has its own wake-up flag, cleared before it claims, so a
  wake-up that arrives during a claim is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.logs import bound_contextvars, get_logger


class Owner:
    """This process's identity in `claimed_by` and in discovery's channel leases."""

    def __init__(self, data_dir: Path) -> None:
        self.prefix = f"{socket.gethostname()}:{data_dir.resolve()}:"
        self.id = f"{self.prefix}{os.getpid()}:{int(time.time())}"

    def token(self, stage: str) -> str:
        """A fresh claim token: the owner, the stage and a random suffix."""
        return f"{self.id}:{stage}:{uuid.uuid4().hex[:8]}"


class ClaimLike(Protocol):
    """What the mechanism reads from a stage's claim."""

    @property
    def row_id(self) -> int: ...

    @property
    def vod_id(self) -> str: ...

    @property
    def channel(self) -> str: ...

    @property
    def corr(self) -> str: ...


C = TypeVar("C", bound=ClaimLike)


class Stage(Protocol[C]):
    """What a stage supplies to the leased workers."""

    name: str

    async def release_previous(self, *, prefix: str, owner: str) -> list[str]:
        """Release the claims a killed predecessor on this host and DATA_DIR left."""
        ...

    async def next(self, token: str, lease_s: float) -> C | float:
        """Claim the next VOD under `token`, or say how many seconds to wait before asking."""
        ...

    async def heartbeat(self, claim: C, token: str, lease_s: float) -> bool:
        """Renew the lease; False when the VOD is no longer ours."""
        ...

    async def attempt(self, claim: C, token: str) -> bool | None:
        """One attempt, its outcome recorded: True succeeded, False failed, None neither."""
        ...

    async def interrupted(self, claim: C, token: str) -> None:
        """A shutdown stopped the attempt: give the VOD back."""
        ...

    async def stopped(self, claim: C, token: str) -> None:
        """The attempt was stopped because the VOD is no longer ours (canceled, taken over)."""
        ...


class KvWriter(Protocol):
    """The one store call the mechanism makes."""

    async def kv_set(self, key: str, value: str, timeout_s: float = ...) -> None: ...


UNHEARD_POLL_S = 5.0  # the poll while no wake-ups can arrive
MIN_WAIT_S = 1.0  # work due but locked by a claim in flight: ask again soon, never spin


def idle_wait(poll_s: float, due_s: float | None) -> float:
    """How long a worker that found nothing sleeps: until the next due work, at most `poll_s`."""
    if due_s is None:
        return poll_s
    return min(poll_s, max(MIN_WAIT_S, due_s))


def worker_wait(stage_wait: float, heard: bool) -> float:
    """The stage's wait, or at most UNHEARD_POLL_S while no wake-up can arrive."""
    return stage_wait if heard else min(stage_wait, UNHEARD_POLL_S)


def monitor_keys(stage: str) -> tuple[str, str, str]:
    """The `kv` keys of a stage's last claim, success and failure times."""
    return (f"{stage}_last_claim_at", f"{stage}_last_success_at", f"{stage}_last_failure_at")


class LeasedWorkers(Generic[C]):
    """`workers` loops over one stage: claim, heartbeat, attempt, stop, record."""

    def __init__(
        self,
        stage: Stage[C],
        kv: KvWriter,
        owner: Owner,
        *,
        workers: int,
        lease_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._stage = stage
        self._kv = kv
        self.owner = owner
        self._workers = workers
        self.lease_s = lease_s
        self._clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopped: set[str] = set()  # attempts stopped on purpose (cancel, lost lease)
        self._wakes: set[asyncio.Event] = set()  # one per worker
        # Whether wake-ups arrive (the daemon's LISTEN connection is up); set by the app.
        self.heard: Callable[[], bool] = lambda: False
        self._log = get_logger(f"vod_{stage.name}")

    async def run_forever(self) -> None:
        """Release what a killed predecessor held, then run the workers until cancelled."""
        with contextlib.suppress(DatabaseUnavailable):
            released = await self._stage.release_previous(
                prefix=self.owner.prefix, owner=self.owner.id
            )
            if released:
                self._log.info(f"{self._stage.name}s_resumed_after_restart", vods=released)
        async with asyncio.TaskGroup() as group:
            for n in range(self._workers):
                group.create_task(self._worker(), name=f"{self._stage.name}-{n}")

    def wake(self) -> None:
        """Look for work now rather than at the next poll (new work, an operator's action)."""
        for wake in self._wakes:
            wake.set()

    def running(self, vod_id: str) -> bool:
        """Whether an attempt on this VOD runs in this process."""
        return vod_id in self._running

    def stop(self, vod_id: str) -> bool:
        """Stop this VOD's attempt if it runs here; True when one did."""
        task = self._running.get(vod_id)
        if task is None:
            return False
        self._stopped.add(vod_id)
        task.cancel()
        return True

    async def _worker(self) -> None:
        wake = asyncio.Event()
        self._wakes.add(wake)
        try:
            while True:
                wake.clear()  # before the claim: a wake-up during it is kept for the wait
                got = await self.run_once()
                if isinstance(got, float):
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(worker_wait(got, self.heard())):
                            await wake.wait()
        finally:
            self._wakes.discard(wake)

    async def run_once(self) -> C | float:
        """Claim and work on one VOD; the claim, or the seconds to wait when there was none."""
        token = self.owner.token(self._stage.name)
        try:
            got = await self._stage.next(token, self.lease_s)
        except DatabaseUnavailable as exc:
            self._log.warning(f"{self._stage.name}_claim_failed", reason=str(exc))
            return 5.0
        if isinstance(got, (int, float)):
            return float(got)
        claim = got
        await self._note(0)
        with bound_contextvars(vod_id=claim.vod_id, channel=claim.channel, corr=claim.corr):
            await self._run(claim, token)
        return claim

    async def _run(self, claim: C, token: str) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always inside a worker task
        self._running[claim.vod_id] = task  # from the claim on, so a cancel always finds it
        heartbeat = asyncio.create_task(self._heartbeat(claim, token))
        try:
            outcome = await self._stage.attempt(claim, token)
            if outcome is not None:
                await self._note(1 if outcome else 2)
        except asyncio.CancelledError:
            if claim.vod_id not in self._stopped:
                await asyncio.shield(self._stage.interrupted(claim, token))
                raise
            task.uncancel()
            await self._stage.stopped(claim, token)
            if task.cancelling():  # a shutdown arrived as well: honour it
                raise
        finally:
            heartbeat.cancel()
            self._running.pop(claim.vod_id, None)
            self._stopped.discard(claim.vod_id)

    async def _heartbeat(self, claim: C, token: str) -> None:
        """Renew the lease for the whole attempt; stop it when the VOD is no longer ours."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                owned = await self._stage.heartbeat(claim, token, self.lease_s)
            except DatabaseUnavailable:
                continue  # the lease outlasts a short outage
            if not owned:
                self.stop(claim.vod_id)
                return

    async def _note(self, which: int) -> None:
        """The monitor's last claim (0), success (1) or failure (2) time of this stage."""
        with contextlib.suppress(DatabaseUnavailable):
            await self._kv.kv_set(monitor_keys(self._stage.name)[which], self._clock().isoformat())
