"""The daemon's one LISTEN connection: it wakes a stage's workers when a VOD became claimable.

Migration 0014's trigger `pg_notify`s the channel `vodarchiver_claimable` with the name of the
stage that may claim the VOD ('download', 'upload') at the commit of any write that may have made
one claimable; this task holds a connection of its own (outside the pool: a listening connection
is never handed to anyone else) and calls that stage's `wake`. On every (re)connection it wakes
every stage, since notifications sent while nobody listened are lost. A lost connection is
logged and reconnected with backoff; meanwhile `listening` is false and the workers poll every
few seconds (leased.UNHEARD_POLL_S), so a stage never stalls on it. Every `keepalive_s` without
a notification the connection is checked with a query, so a connection that died silently (a
half-open TCP link) is noticed.

psycopg trap (FIELD-NOTES): breaking out of `conn.notifies()` leaves the connection locked; the
loop here always lets the generator end by its own `timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import psycopg

from vodarchiver.db.queries import q
from vodarchiver.logs import get_logger

CHANNEL = "vodarchiver_claimable"
CONNECT_TIMEOUT_S = 5


class ClaimWakeups:
    """LISTEN on `vodarchiver_claimable`; each notification calls the named stage's wake-up."""

    def __init__(
        self,
        conninfo: str,
        stages: Mapping[str, Callable[[], None]],
        *,
        keepalive_s: float = 30.0,
        retry_max_s: float = 10.0,
    ) -> None:
        self._conninfo = conninfo
        self._stages = dict(stages)
        self._keepalive_s = keepalive_s
        self._retry_max_s = retry_max_s
        self._listening = False
        self.connections = 0  # how many times a LISTEN connection was opened
        self._log = get_logger("wakeups")

    def listening(self) -> bool:
        """Whether wake-ups can arrive now (the LISTEN connection is up)."""
        return self._listening

    async def run_forever(self) -> None:
        """Listen, reconnecting with backoff after any loss, until cancelled."""
        delay = 0.5
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self._log.warning("wakeups_lost", reason=str(exc).strip()[:300],
                                  error_type=exc.__class__.__name__, retry_in_s=delay)  # fmt: skip
            finally:
                if self._listening:  # it was up: the next loss starts the backoff over
                    delay = 0.5
                self._listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
            application_name="vodarchiver-wakeups",
        )  # fmt: skip
        async with conn:
            await conn.execute(q("claimable_listen"))
            self._listening = True
            self.connections += 1
            self._log.info("wakeups_listening", channel=CHANNEL, stages=sorted(self._stages))
            self._wake_all()  # whatever became claimable while nobody listened
            while True:
                heard = False
                async for note in conn.notifies(timeout=self._keepalive_s):
                    heard = True
                    self._dispatch(note.payload)
                if not heard:
                    async with asyncio.timeout(CONNECT_TIMEOUT_S):
                        await conn.execute(q("ping"))

    def _dispatch(self, stage: str) -> None:
        wake = self._stages.get(stage)
        if wake is not None:
            wake()

    def _wake_all(self) -> None:
        for wake in self._stages.values():
            wake()
