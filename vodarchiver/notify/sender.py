"""Delivery of the outbox through Apprise: once per event and target, across restarts and replicas.

A sender claims due events (`FOR UPDATE SKIP LOCKED`, with a lease), renders each and hands it to
every target that has not taken it yet; a target that took it is recorded at once, so a retry
never repeats it there. A failure is recorded with its reason and retried with a doubling, capped
delay; past NOTIFY_GIVE_UP the event is `failed`, and both show in `/status`. Nothing else waits
for a delivery: the pipeline only ever writes a row.

Apprise is synchronous (requests underneath), so each send runs in a thread under a timeout. Its
own logger is kept out of ours (its lines name hosts and paths, which may hold tokens); a failed
send's reason is read from the lines Apprise wrote in that thread, scrubbed of every URL part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vodarchiver.db.notify_store import NotifyStore, Outgoing
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.logs import get_logger, redact, register_secrets
from vodarchiver.notify.events import (
    Event,
    Message,
    delivery_delay,
    describe_target,
    render,
    split_urls,
    target_id,
    url_secrets,
)

SEND_TIMEOUT_S = 30.0
PRUNE_AFTER_DAYS = 30


def quiet_apprise() -> None:
    """Apprise's own log lines stay out of ours (they name hosts and paths: maybe tokens)."""
    logger = logging.getLogger("apprise")
    logger.propagate = False
    logger.setLevel(logging.WARNING)


class _ThreadCapture(logging.Handler):
    """Apprise's warnings written by one thread: why its send failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


@contextlib.contextmanager
def _captured() -> Iterator[_ThreadCapture]:
    logger = logging.getLogger("apprise")
    handler = _ThreadCapture()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@dataclass(frozen=True)
class Target:
    """One Apprise URL, known by its digest."""

    id: str
    label: str
    url: str


class Targets:
    """The NOTIFY_URLS targets: each sent to on its own, in a thread, under a timeout."""

    def __init__(self, urls: Sequence[str], *, timeout_s: float = SEND_TIMEOUT_S) -> None:
        for url in urls:
            register_secrets(url_secrets(url))
        self.targets = [Target(target_id(u), f"#{n} {describe_target(u)}", u)
                        for n, u in enumerate(urls, start=1)]  # fmt: skip
        self._timeout_s = timeout_s
        quiet_apprise()

    @classmethod
    def from_setting(cls, raw: str, *, timeout_s: float = SEND_TIMEOUT_S) -> Targets:
        """From NOTIFY_URLS' text."""
        return cls(split_urls(raw), timeout_s=timeout_s)

    async def send(self, target: Target, message: Message) -> str | None:
        """None when the target took it, else why not (scrubbed)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await asyncio.to_thread(self._send_sync, target, message)
        except TimeoutError:
            return f"no answer within {self._timeout_s:g}s"

    def _send_sync(self, target: Target, message: Message) -> str | None:
        import apprise  # noqa: PLC0415 - loads ~100 plugins: only where a message is sent

        with _captured() as capture, warnings.catch_warnings():
            # Apprise's e-mail plugin imports the deprecated imghdr on Python 3.11/3.12.
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                sender = apprise.Apprise()
                if not sender.add(target.url):
                    return "Apprise does not recognise this URL"
                ok = sender.notify(title=message.title, body=message.body,
                                   notify_type=apprise.NotifyType(message.kind))  # fmt: skip
            except Exception as exc:  # a plugin bug must not take the sender down
                return redact(f"{exc.__class__.__name__}: {exc}")[:300]
        if ok:
            return None
        reason = "; ".join(capture.lines[-2:]) or "the target refused the notification"
        return redact(reason)[:300]


@dataclass(frozen=True)
class SenderPolicy:
    """How the sender paces itself."""

    events: frozenset[Event]
    console_url: str
    retry_base_s: float = 30.0
    retry_cap_s: float = 3600.0
    give_up_after: timedelta = timedelta(days=1)
    poll_s: float = 2.0
    batch: int = 10


class Sender:
    """Delivers the outbox; any number of senders (replicas) may run on one database."""

    def __init__(
        self,
        store: NotifyStore,
        targets: Targets | None,
        policy: SenderPolicy,
        *,
        data_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._targets = targets
        self._policy = policy
        self._clock = clock
        self._prefix = f"{socket.gethostname()}:{data_dir.resolve()}:"
        self.owner = f"{self._prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        n = len(targets.targets) if targets else 0
        self._lease_s = max(60.0, 2 * SEND_TIMEOUT_S * max(1, n))
        self._db_down = False
        self._stopping = asyncio.Event()
        self._log = get_logger("notify")

    def stop(self) -> None:
        """Finish the event in hand, then return from run_forever."""
        self._stopping.set()

    async def run_forever(self) -> None:
        """Deliver until cancelled or stopped; a database outage is waited out (logged once)."""
        await self._store.release_previous(prefix=self._prefix, owner=self.owner)
        pruned_at = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                if loop.time() - pruned_at > 3600:
                    await self._store.prune(PRUNE_AFTER_DAYS)
                    pruned_at = loop.time()
                handled = await self.run_once()
                self._database_back()
            except DatabaseUnavailable as exc:
                self._database_down(exc)
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._policy.poll_s)

    async def run_once(self) -> int:
        """Claim and deliver one batch; how many events were handled."""
        rows = await self._store.claim(owner=self.owner, lease_s=self._lease_s,
                                       limit=self._policy.batch)  # fmt: skip
        for row in rows:
            await self._deliver(row)
        return len(rows)

    async def _deliver(self, row: Outgoing) -> None:
        try:
            event = Event(row.event)
        except ValueError:
            await self._store.skip(row.id, owner=self.owner, why=f"unknown event {row.event!r}")
            return
        if event not in self._policy.events:
            await self._store.skip(row.id, owner=self.owner, why="not in NOTIFY_EVENTS")
            return
        if self._targets is None or not self._targets.targets:
            await self._store.skip(row.id, owner=self.owner, why="NOTIFY_URLS is empty")
            return
        message = render(event, row.vod_id, row.payload, console_url=self._policy.console_url)
        pending = [t for t in self._targets.targets if t.id not in row.delivered_to]
        errors: dict[str, str] = {}
        took: list[str] = []
        for target in pending:
            error = await self._targets.send(target, message)
            if error is None:
                took.append(target.id)
                # Recorded at once: a crash before the next target never repeats this one.
                await self._store.delivered(row.id, owner=self.owner, targets=[target.id],
                                            done=False)  # fmt: skip
            else:
                errors[target.label] = error
        if not errors:
            await self._store.delivered(row.id, owner=self.owner, targets=took, done=True)
            self._log.info("notification_sent", kind=event.value, notification=row.id,
                           vod_id=row.vod_id, targets=len(took))  # fmt: skip
            return
        attempts = row.attempts + 1
        give_up = self._clock() - row.created_at > self._policy.give_up_after
        delay = delivery_delay(attempts, base_s=self._policy.retry_base_s,
                               cap_s=self._policy.retry_cap_s)  # fmt: skip
        reason = "; ".join(f"{label}: {why}" for label, why in errors.items())
        await self._store.retry(row.id, owner=self.owner, error=reason, delay_s=delay,
                                give_up=give_up)  # fmt: skip
        self._log.warning("notification_failed", kind=event.value, notification=row.id,
                          attempt=attempts, reason=reason,
                          retry_in_s=None if give_up else delay, gave_up=give_up)  # fmt: skip

    def _database_down(self, exc: DatabaseUnavailable) -> None:
        if not self._db_down:
            self._db_down = True
            self._log.warning("notify_database_unavailable", reason=str(exc))

    def _database_back(self) -> None:
        if self._db_down:
            self._db_down = False
            self._log.info("notify_database_available")

    async def status(self) -> dict[str, Any]:
        """The `notifications` part of `/status` (targets by digest, never by URL)."""
        try:
            found = await self._store.status()
        except DatabaseUnavailable as exc:
            return {"error": str(exc)}
        failing = [
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
            for row in found["failing"]
        ]
        counts = {k: v.isoformat() if isinstance(v, datetime) else v
                  for k, v in found["counts"].items()}  # fmt: skip
        return {
            "targets": [t.label for t in self._targets.targets] if self._targets else [],
            "events": sorted(e.value for e in self._policy.events),
            **counts,
            "failing": failing,
        }


async def send_test(targets: Targets) -> list[tuple[str, str | None]]:
    """`vodarchiver notify test`: one test message to every target; (label, error or None)."""
    message = Message(
        "vodarchiver test notification",
        "If you read this, vodarchiver can reach this target.\nNext: nothing to do.",
        "info",
    )
    return [(t.label, await targets.send(t, message)) for t in targets.targets]
