"""Writes chat to PostgreSQL in batches: at least every CHAT_FLUSH_INTERVAL, sooner when busy.

Recorders call `add()` (synchronous, cheap) for every event; one writer task commits what has
accumulated in one transaction (`ChatStore.write`). A message waits at most one flush interval
(500 ms by default, counted from its arrival) before its write starts, so a SIGKILL loses at most
that and the write in progress. Repeats are dropped twice: here, against the ids of the last
`RECENT_IDS` events (the overlap of a RECONNECT costs no database work), and by the table's key
(after a restart). While PostgreSQL is away the batch is kept and retried, up
to `MAX_BUFFERED` events; a batch PostgreSQL refuses is split until the bad event is found and
dropped alone. `chat_write_lag_seconds` is the age of a batch's oldest event at its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from vodarchiver.db.chat_store import ChatRow, ChatStore
from vodarchiver.errors import DatabaseUnavailable, DataRejected
from vodarchiver.logs import get_logger
from vodarchiver.metrics import Metrics
from vodarchiver.twitch.irc import ChatEvent

RECENT_IDS = 200_000
MAX_BATCH = 10_000
# A batch this big is written at once, without waiting for the interval: on a busy channel the
# writer then commits back to back (each batch what arrived during the last write), so lag stays
# near one write rather than interval + write; a quiet one still commits once an interval.
EARLY_BATCH = 2_000
MAX_BUFFERED = 2_000_000
RETRY_S = 1.0


class ChatWriter:
    """The one place chat events go on their way to PostgreSQL."""

    def __init__(
        self,
        store: ChatStore,
        metrics: Metrics,
        *,
        flush_interval_s: float = 0.5,
        max_batch: int = MAX_BATCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._interval = flush_interval_s
        self._max_batch = max_batch
        self._early = min(EARLY_BATCH, max_batch)
        self._clock = clock
        self._pending: list[ChatRow] = []
        self._received: list[float] = []  # when each pending event arrived
        self._recent: set[str] = set()
        self._recent_order: deque[str] = deque()  # the same ids, oldest first
        self._full = asyncio.Event()
        self._log = get_logger("chat_writer")
        self.written = 0  # events committed (new rows), for tests and the benchmark
        self.last_lag_s = 0.0
        self.worst_lag_s = 0.0  # the highest lag since the benchmark last set it to 0
        self.committed = asyncio.Condition()

    def add(self, event: ChatEvent, stream_id: str | None) -> None:
        """Queue an event for the next batch, unless it was seen recently."""
        msg_id = event.msg_id
        if msg_id in self._recent:
            return
        if len(self._pending) >= MAX_BUFFERED:
            # Not remembered as seen: the replay after a reconnect may still bring it in.
            self._log.error("chat_buffer_full", dropped_msg_id=event.msg_id)
            return
        self._recent.add(msg_id)
        self._recent_order.append(msg_id)
        if len(self._recent_order) > RECENT_IDS:
            self._recent.discard(self._recent_order.popleft())
        self._received.append(self._clock())
        self._pending.append(ChatRow(event, stream_id))
        if len(self._pending) >= self._early:
            self._full.set()

    @property
    def pending(self) -> int:
        """Events waiting for their batch."""
        return len(self._pending)

    async def run_forever(self) -> None:
        """Flush every interval (or when a batch is full) until cancelled; then flush once more."""
        try:
            while True:
                # The interval runs from the oldest waiting event's arrival, not from the end of
                # the last write: under load a write takes a good part of it, and counting it
                # again would make an event wait up to interval + two writes.
                wait = self._interval
                if self._received:
                    wait -= self._clock() - self._received[0]
                if wait > 0 and len(self._pending) < self._early:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._full.wait()
                await self.flush()
        finally:
            if self._pending:
                # Shutdown: the last events still go in, within the stop budget.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        await asyncio.shield(self.flush())

    async def flush(self) -> None:
        """Write everything pending, a batch at a time; on an outage keep it and retry."""
        while self._pending:
            self._full.clear()
            batch = self._pending[: self._max_batch]
            oldest = self._received[0]
            try:
                await self._write(batch)
            except DatabaseUnavailable as exc:
                self._log.warning("chat_write_retry", reason=str(exc), pending=len(self._pending))
                await asyncio.sleep(RETRY_S)
                continue
            del self._pending[: len(batch)]
            del self._received[: len(batch)]
            self.last_lag_s = self._clock() - oldest
            self.worst_lag_s = max(self.worst_lag_s, self.last_lag_s)
            self._metrics.chat_write_lag.set(self.last_lag_s)
            async with self.committed:
                self.committed.notify_all()

    async def _write(self, batch: list[ChatRow]) -> None:
        try:
            result = await self._store.write(batch)
        except DataRejected as exc:
            if len(batch) == 1:
                self._log.error("chat_event_refused", msg_id=batch[0].event.msg_id[:80],
                                reason=str(exc))  # fmt: skip
                return
            half = len(batch) // 2
            await self._write(batch[:half])
            await self._write(batch[half:])
            return
        for channel, n in result.inserted.items():
            self._metrics.chat_messages_recorded.labels(channel).inc(n)
            self.written += n
