"""The chat replay stage: every finished VOD's chat from Twitch GQL, merged with live chat.

A worker claims a VOD's replay job (`FOR UPDATE SKIP LOCKED` and a lease, so replicas split the
work), fetches its chapters once, then its chat page by page from the stored resume point, each
page stored with the new resume point in one transaction (a restart continues from there). The
next page is fetched while the last one is written, so storing costs the replay almost nothing
over the network time. Requests are paced (`CHAT_REPLAY_INTERVAL`) and back off on 429/5xx; the
decisions are pure (`replay_rules.py`). A refusal (integrity check, `comments: null`, a deleted
VOD) is never a failure of the VOD: the job is `unavailable` with the reason and asked again after
`CHAT_REPLAY_RETRY`; a refused cursor continues by offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable

from vodarchiver.archive_metrics import ArchiveMetrics
from vodarchiver.db.replay_store import ReplayJob, ReplayStore, Stored
from vodarchiver.errors import GqlRefused, GqlUnavailable, LeaseLost
from vodarchiver.logs import bound_contextvars, get_logger
from vodarchiver.pipeline.replay_rules import (
    Position,
    after_page,
    on_cursor_refused,
    pace_wait_s,
    put_back_s,
    retry_wait_s,
)
from vodarchiver.twitch.gql import GqlClient

STAGE_RETRY_CAP_S = 60.0


class ChatReplay:
    """Replays the chat of finished VODs, one at a time per worker."""

    def __init__(
        self,
        gql: GqlClient,
        store: ReplayStore,
        metrics: ArchiveMetrics,
        *,
        owner: str,
        owner_prefix: str | None = None,
        interval_s: float,
        retry_s: float,
        poll_s: float = 30.0,
        lease_s: float = 60.0,
        after_done: Callable[[ReplayJob], Awaitable[None]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._gql = gql
        self._store = store
        self._metrics = metrics
        self._owner = owner
        # Jobs held by an earlier run of this daemon (same host and data directory) are ours.
        self._prefix = owner_prefix or owner
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._poll_s = poll_s
        self._lease_s = lease_s
        self.after_done = after_done
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._last_start: float | None = None
        self._log = get_logger("chat_replay")

    async def run_forever(self) -> None:
        """Claim and replay jobs until cancelled; an error backs off, never ends the stage."""
        failures = 0
        while True:
            try:
                worked = await self.run_once()
                failures = 0
            except Exception as exc:  # an optional stage restarts, never dies
                failures += 1
                wait = min(STAGE_RETRY_CAP_S, 2.0**failures)
                self._log.warning("chat_replay_error", error=str(exc)[:300],
                                  error_type=exc.__class__.__name__, retry_in_s=wait)  # fmt: skip
                await self._sleep(wait)
                continue
            if not worked:
                await self._sleep(self._poll_s)

    async def run_once(self) -> bool:
        """Queue new VODs, then replay the next due one; False when none was due."""
        await self._store.enqueue()
        job = await self._store.claim(self._owner, self._lease_s, prefix=self._prefix)
        if job is None:
            return False
        await self.replay(job)
        return True

    async def replay(self, job: ReplayJob) -> str:
        """One run over a claimed job: `done`, `unavailable`, `put_back` or `lease_lost`."""
        with bound_contextvars(vod_id=job.vod_id, channel=job.channel):
            try:
                if job.chapters_at is None:
                    await self._chapters(job)
                outcome = await self._pages(job)
            except LeaseLost:
                self._log.warning("chat_replay_lease_lost")
                outcome = "lease_lost"
            self._metrics.replay_runs.labels(outcome).inc()
            if outcome == "done" and self.after_done is not None:
                await self.after_done(job)
            return outcome

    async def _chapters(self, job: ReplayJob) -> None:
        """The VOD's chapters; a failure leaves them for the next run, never stops the chat."""
        await self._pace()
        try:
            chapters = await self._gql.chapters(job.vod_id)
        except (GqlRefused, GqlUnavailable) as exc:
            self._log.info("chapters_unavailable", reason=str(exc)[:200])
            return
        await self._store.store_chapters(job, self._owner, chapters)
        self._log.info("chapters_stored", chapters=len(chapters))

    async def _pages(self, job: ReplayJob) -> str:
        position = Position(job.offset_s, job.cursor)
        writing: asyncio.Task[Stored] | None = None
        tries = 0
        try:
            while True:
                offset, cursor = position.request()
                await self._pace()
                try:
                    page = await self._gql.comments(job.vod_id, offset_s=offset, cursor=cursor)
                except GqlRefused as exc:
                    self._metrics.replay_pages.labels(exc.reason).inc()
                    if exc.reason == "integrity" and cursor is not None:
                        self._log.info("chat_replay_cursor_refused", offset_s=position.offset_s)
                        position = on_cursor_refused(position)
                        continue
                    await self._drain(writing)
                    writing = None
                    return await self._end(job, "unavailable", exc.reason, self._retry_s)
                except GqlUnavailable as exc:
                    self._metrics.replay_pages.labels("unavailable").inc()
                    tries += 1
                    wait = retry_wait_s(tries, retry_after_s=exc.retry_after_s,
                                        draw=self._rng.random())  # fmt: skip
                    if wait is None:
                        await self._drain(writing)
                        writing = None
                        return await self._end(job, "pending", str(exc)[:200],
                                               put_back_s(job.attempts))  # fmt: skip
                    self._log.info("chat_replay_backoff", error=str(exc)[:200], wait_s=wait)
                    await self._sleep(wait)
                    continue
                tries = 0
                self._metrics.replay_pages.labels("ok").inc()
                comments = page.comments
                position = after_page(
                    position, by_offset=cursor is None, cursor=page.cursor,
                    first_s=comments[0].offset_s if comments else None,
                    last_s=comments[-1].offset_s if comments else None,
                )  # fmt: skip
                await self._drain(writing)
                writing = asyncio.create_task(self._store.store_page(
                    job, self._owner, comments, offset_s=position.offset_s,
                    cursor=position.cursor, lease_s=self._lease_s,
                ))  # fmt: skip
                if not page.has_next or not comments:
                    await self._drain(writing)
                    writing = None
                    return await self._end(job, "done", None, 0.0)
        finally:
            if writing is not None:
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing

    async def _drain(self, writing: asyncio.Task[Stored] | None) -> None:
        """Wait for the page being written; its errors (LeaseLost, database) surface here."""
        if writing is None:
            return
        stored = await writing
        self._metrics.replay_messages.labels("new").inc(stored.inserted)
        self._metrics.replay_messages.labels("merged").inc(stored.merged)

    async def _end(self, job: ReplayJob, state: str, reason: str | None, retry_s: float) -> str:
        await self._store.finish(job, self._owner, state=state, reason=reason, retry_s=retry_s)
        outcome = {"pending": "put_back"}.get(state, state)
        self._log.info("chat_replay_" + outcome, reason=reason, retry_in_s=retry_s or None)
        return outcome

    async def _pace(self) -> None:
        wait = pace_wait_s(self._last_start, self._monotonic(), self._interval_s)
        if wait > 0:
            await self._sleep(wait)
        self._last_start = self._monotonic()
