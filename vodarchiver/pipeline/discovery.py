"""Discovery: every VOD of every configured channel, read from Helix into `vods`.

A pass resolves the channels' user ids (cached), asks /streams once for all channels which are
live, then reads each channel's archive listing (newest first), a few channels at a time:
- the listing is read from the top down to the channel's *watermark*: the newest VOD time down
  to which an earlier pass read it without a gap. The first pass (no watermark) reads every
  page; a quiet channel then costs one request a pass. A pass that fails midway leaves the
  watermark where it was, so the next pass reads that stretch again and nothing is skipped.
  Once a day the whole listing is read again, in case anything shifted under a pass's cursor;
- each VOD is inserted or refreshed (title edits, growing durations), with its expiry estimate;
  an archive whose stream is still live, or whose duration still grows, is kept `live` and is
  queued only once the stream has ended;
- a VOD we have no copy of that is missing where the listing should show it is looked up by id.
  It becomes `gone` only when Helix confirms it missing twice, GONE_AFTER apart; a gone VOD that
  Twitch may still hold is looked up again hourly and revived if it is back;
- a bad page (not JSON, HTML, enormous, a looping cursor, values the database refuses) ends that
  channel's pass with a logged reason; a bad item is skipped alone. Nothing stored is
  overwritten by what failed to parse, and no input can stop the other channels or the loop.
Replicas split the work through a lease on each channel row, renewed as a pass goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vodarchiver.db.store import Store
from vodarchiver.errors import (
    DatabaseUnavailable,
    DataRejected,
    HelixDataError,
    HelixRequestError,
    HelixUnavailable,
    LeaseLost,
    TwitchCredentialsError,
)
from vodarchiver.logs import bound_contextvars, get_logger
from vodarchiver.metrics import Metrics
from vodarchiver.models import ChannelRecord, Claim, PassResult, VodUpsert
from vodarchiver.pipeline.leased import Owner
from vodarchiver.pipeline.rules import expires_at, retention_days, still_live
from vodarchiver.twitch.helix import HelixClient, Rejected
from vodarchiver.twitch.models import HelixVideo

MAX_PAGES = 500  # 50,000 VODs: more than any channel has; a guard against endless listings
VERIFY_EVERY = timedelta(hours=1)  # how often VODs beyond the pages read are checked by id
FULL_READ_EVERY = timedelta(days=1)
LEASE_S = 300.0  # renewed after every page, so only a stalled replica loses it
_EXPECTED = (
    HelixDataError,
    HelixRequestError,
    HelixUnavailable,
    TwitchCredentialsError,
    DatabaseUnavailable,
    DataRejected,
)


@dataclass
class ChannelOutcome:
    """What one pass over one channel did."""

    channel: str
    pages: int = 0
    discovered: int = 0
    seen: int = 0
    rejected: int = 0
    gone: list[str] = field(default_factory=list)
    complete: bool = False  # read down to the end of the listing
    reached_watermark: bool = False
    skipped: bool = False
    error: str | None = None


class Discovery:
    """Runs discovery passes over the configured channels, every DISCOVERY_INTERVAL."""

    def __init__(
        self,
        helix: HelixClient,
        store: Store,
        metrics: Metrics,
        *,
        channels: Sequence[str],
        retention_overrides: Mapping[str, int],
        interval_s: float,
        concurrency: int = 4,
        on_new_work: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owner: Owner | None = None,
    ) -> None:
        self._helix = helix
        self._store = store
        self._metrics = metrics
        self._channels = tuple(channels)
        self._overrides = dict(retention_overrides)
        self._interval_s = interval_s
        self._limit = asyncio.Semaphore(concurrency)
        self._on_new_work = on_new_work
        self._clock = clock
        # The process's owner identity (shared with the stages' claims), one token per instance.
        self._owner = (owner or Owner(Path("."))).token("discovery")
        self._log = get_logger("discovery")

    async def run_forever(self) -> None:
        """A pass now, then one every interval; passes that fail are logged and retried."""
        while True:
            # Another replica's pass within the last half interval counts as ours.
            await self.run_pass(min_gap_s=self._interval_s / 2)
            await asyncio.sleep(self._interval_s)

    async def run_pass(self, *, min_gap_s: float = 0.0) -> list[ChannelOutcome]:
        """One pass over every channel; never raises for Helix or database trouble."""
        records = await self._resolve_channels()
        live = await self._live_stream_ids(records)
        outcomes = await asyncio.gather(
            *(self._channel(records[c], live, min_gap_s) for c in self._channels if c in records)
        )
        if self._on_new_work is not None and any(o.discovered or o.seen for o in outcomes):
            self._on_new_work()  # the download stage looks at the queue now, not at its next poll
        return list(outcomes)

    # --- per pass -------------------------------------------------------------------------

    async def _resolve_channels(self) -> dict[str, ChannelRecord]:
        try:
            users = await self._helix.users(self._channels)
        except _EXPECTED as exc:
            self._log.warning("discovery_users_failed", reason=str(exc))
            with contextlib.suppress(DatabaseUnavailable):
                return await self._store.channels_known(self._channels)
            return {}
        records: dict[str, ChannelRecord] = {}
        for login in self._channels:
            user = users.get(login)
            if user is None:
                self._log.warning("twitch_channel_not_found", channel=login)
                continue
            record = ChannelRecord(login, user.id, user.display_name, user.broadcaster_type)
            try:
                await self._store.channel_upsert(record)
            except DatabaseUnavailable as exc:
                self._log.warning("discovery_db_unavailable", channel=login, reason=str(exc))
                continue
            records[login] = record
        return records

    async def _live_stream_ids(self, records: Mapping[str, ChannelRecord]) -> frozenset[str] | None:
        if not records:
            return frozenset()
        try:
            streams = await self._helix.live_streams(r.user_id for r in records.values())
        except _EXPECTED as exc:
            # Unknown rather than "nobody is live": new archives then wait for a definite answer.
            self._log.warning("discovery_streams_failed", reason=str(exc))
            return None
        return frozenset(s.id for s in streams.values())

    # --- per channel ----------------------------------------------------------------------

    async def _channel(
        self, record: ChannelRecord, live: frozenset[str] | None, min_gap_s: float
    ) -> ChannelOutcome:
        outcome = ChannelOutcome(record.login)
        async with self._limit:
            with bound_contextvars(channel=record.login):
                try:
                    claim = await self._store.channel_claim(
                        record.login, owner=self._owner, lease_s=LEASE_S, min_gap_s=min_gap_s
                    )
                except DatabaseUnavailable as exc:
                    outcome.error = str(exc)
                    return self._finish(outcome)
                if claim is None:
                    outcome.skipped = True
                    return self._finish(outcome)
                result = await self._pass(record, live, claim, outcome)
                with contextlib.suppress(DatabaseUnavailable):
                    await self._store.channel_release(
                        record.login, owner=self._owner, result=result
                    )
                return self._finish(outcome)

    async def _pass(
        self,
        record: ChannelRecord,
        live: frozenset[str] | None,
        claim: Claim,
        outcome: ChannelOutcome,
    ) -> PassResult:
        """Read the listing, then look for VODs that vanished; never raises."""
        newest: datetime | None = None
        verified = False
        try:
            days = retention_days(record.login, record.broadcaster_type, self._overrides)
            await self._store.vods_retention_update(record.login, days)
            seen = await self._read_listing(record, live, claim, outcome)
            newest = max((v.created_at for v in seen.values()), default=None)
            verified = await self._find_gone(record, live, seen, claim, outcome)
        except LeaseLost:
            outcome.error = "another replica took the channel over"
        except _EXPECTED as exc:
            outcome.error = f"{exc.__class__.__name__}: {exc}"
        except Exception as exc:  # no input may stop the loop or the other channels
            outcome.error = f"unexpected {exc.__class__.__name__}: {exc}"
            self._log.exception("discovery_channel_crashed", channel=record.login)
        done = outcome.error is None and (outcome.complete or outcome.reached_watermark)
        return PassResult(
            watermark_at=newest if done else None,
            full_read=outcome.error is None and outcome.complete,
            verified=verified,
            error=outcome.error,
        )

    async def _read_listing(
        self,
        record: ChannelRecord,
        live: frozenset[str] | None,
        claim: Claim,
        outcome: ChannelOutcome,
    ) -> dict[str, HelixVideo]:
        now = self._clock()
        full = (
            claim.watermark_at is None
            or claim.full_read_at is None
            or now - claim.full_read_at >= FULL_READ_EVERY
        )
        seen: dict[str, HelixVideo] = {}
        cursors: set[str] = set()
        cursor: str | None = None
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            page = await self._helix.videos_page(record.user_id, cursor)
            outcome.pages += 1
            self._report_rejected(page.rejected, outcome)
            # A listing can repeat a VOD (its offsets shift as VODs come and go): once is enough.
            fresh: dict[str, HelixVideo] = {}
            for video in page.videos:
                if video.id not in seen:
                    fresh.setdefault(video.id, video)  # the first of two copies wins
            known = await self._store.vod_durations(list(fresh))
            rows = [self._row(v, record, live, known.get(v.id)) for v in fresh.values()]
            results = await self._store.vods_upsert(rows)
            inserted = sum(1 for was_new, _ in results.values() if was_new)
            if inserted:
                outcome.discovered += inserted
                self._metrics.vods_discovered.labels(record.login).inc(inserted)
            seen.update(fresh)
            if loop.time() - renewed > LEASE_S / 3:  # a committed write: not after every page
                if not await self._store.channel_renew(
                    record.login, owner=self._owner, lease_s=LEASE_S
                ):
                    raise LeaseLost
                renewed = loop.time()
            if page.cursor is None:
                outcome.complete = True
                break
            watermark = claim.watermark_at
            if not full and watermark and any(v.created_at <= watermark for v in page.videos):
                outcome.reached_watermark = True  # everything older was read by an earlier pass
                break
            if page.cursor in cursors or outcome.pages >= MAX_PAGES:
                raise HelixDataError(
                    f"the listing does not end (cursor repeated or {outcome.pages} pages); "
                    "stopped reading it for this pass"
                )
            cursors.add(page.cursor)
            cursor = page.cursor
        outcome.seen = len(seen)
        return seen

    def _row(
        self,
        video: HelixVideo,
        record: ChannelRecord,
        live: frozenset[str] | None,
        previous_duration_s: int | None,
    ) -> VodUpsert:
        days = retention_days(record.login, record.broadcaster_type, self._overrides)
        return VodUpsert(
            id=video.id,
            channel=record.login,
            stream_id=video.stream_id,
            title=video.title,
            description=video.description,
            created_at=video.created_at,
            published_at=video.published_at,
            duration_s=video.duration_s,
            url=video.url,
            thumbnail_url=video.thumbnail_url,
            viewable=video.viewable,
            muted_segments=[
                {"offset": m.offset_s, "duration": m.duration_s} for m in video.muted_segments
            ],
            retention_days=days,
            expires_at=expires_at(video.created_at, days),
            live=still_live(video.stream_id, live, video.duration_s, previous_duration_s),
        )

    async def _find_gone(
        self,
        record: ChannelRecord,
        live: frozenset[str] | None,
        seen: Mapping[str, HelixVideo],
        claim: Claim,
        outcome: ChannelOutcome,
    ) -> bool:
        """Note VODs missing from Twitch, and mark gone those missing twice; True if every
        unarchived VOD of the channel was checked."""
        unarchived = {i: d for i, d in (await self._store.vods_unarchived(record.login)).items()
                      if i not in seen}  # fmt: skip
        now = self._clock()
        verify_all = claim.verified_at is None or now - claim.verified_at >= VERIFY_EVERY
        if outcome.complete or verify_all:
            candidates = list(unarchived)
        else:
            # Only where this pass's pages should have listed them: as new as the oldest seen.
            oldest = min((v.created_at for v in seen.values()), default=None)
            candidates = [i for i, d in unarchived.items() if oldest and d and d >= oldest]
        second_look = await self._store.vods_gone_unexpired(record.login, now) if verify_all else []
        lookup = [i for i in (*candidates, *second_look) if i not in seen]
        if not lookup:
            return outcome.complete or verify_all
        found, rejected = await self._helix.videos_by_id(lookup)
        if found:  # still on Twitch though not in the listing read: refresh (and revive) them
            known = await self._store.vod_durations(list(found))
            rows = [self._row(v, record, live, known.get(v.id)) for v in found.values()]
            await self._store.vods_upsert(rows)
        if any(r.item_id == "?" for r in rejected):
            return False  # an answer item without an id: cannot tell who is missing
        unreadable = {r.item_id for r in rejected}
        vanished = [i for i in candidates if i not in found and i not in unreadable]
        outcome.gone = await self._store.vods_mark_missing(vanished, now)
        for vod_id in outcome.gone:
            self._log.info("vod_gone", channel=record.login, vod_id=vod_id)
        return outcome.complete or verify_all

    def _report_rejected(self, rejected: Sequence[Rejected], outcome: ChannelOutcome) -> None:
        for item in rejected:
            outcome.rejected += 1
            self._log.warning(
                "helix_item_rejected", channel=outcome.channel, vod_id=item.item_id,
                reason=item.reason,
            )  # fmt: skip

    def _finish(self, outcome: ChannelOutcome) -> ChannelOutcome:
        if outcome.skipped:
            self._log.debug("discovery_channel_skipped", channel=outcome.channel)
            return outcome
        result = "error" if outcome.error else "ok"
        self._metrics.discovery_passes.labels(outcome.channel, result).inc()
        if outcome.error:
            self._log.warning(
                "discovery_channel_failed", channel=outcome.channel, reason=outcome.error,
                pages=outcome.pages,
            )  # fmt: skip
        else:
            self._metrics.discovery_last_success.labels(outcome.channel).set_to_current_time()
            self._log.info(
                "discovery_channel_done", channel=outcome.channel, pages=outcome.pages,
                discovered=outcome.discovered, seen=outcome.seen, gone=len(outcome.gone),
                rejected=outcome.rejected, complete=outcome.complete,
            )  # fmt: skip
        return outcome
