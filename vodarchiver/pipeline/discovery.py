"""Discovery: every VOD of every configured channel, read from Helix into `vods`.

A pass resolves the channels' user ids (cached), asks /streams once for all channels which are
live, then reads each channel's archive listing (newest first), a few channels at a time:
- the first pass over a channel reads every page; later passes stop at the first page that holds
  a VOD already known, so a quiet channel costs one request per pass;
- each VOD is inserted or refreshed (title edits, growing durations), with its expiry estimate;
  an archive whose stream is still live, or whose duration still grows, is kept `live` and is
  queued only once the stream has ended;
- a VOD we have no copy of that is missing where the listing should show it is looked up by id,
  and only if Helix confirms it is gone does it become `gone`;
- a bad page (not JSON, HTML, enormous, a looping cursor) ends that channel's pass with a logged
  reason; a bad item is skipped alone. Nothing stored is overwritten by what failed to parse.
Replicas split the work through a short lease on each channel row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from vodarchiver.db.store import Store
from vodarchiver.errors import (
    DatabaseUnavailable,
    HelixDataError,
    HelixRequestError,
    HelixUnavailable,
    TwitchCredentialsError,
)
from vodarchiver.logs import bound_contextvars, get_logger
from vodarchiver.metrics import Metrics
from vodarchiver.models import ChannelRecord, Claim, VodUpsert
from vodarchiver.pipeline.rules import expires_at, retention_days, still_live
from vodarchiver.twitch.helix import HelixClient, Rejected
from vodarchiver.twitch.models import HelixVideo

MAX_PAGES = 500  # 50,000 VODs: more than any channel has; a guard against endless listings
VERIFY_EVERY = timedelta(hours=1)  # how often VODs beyond the first pages are checked by id
LEASE_S = 600.0
_EXPECTED = (
    HelixDataError,
    HelixRequestError,
    HelixUnavailable,
    TwitchCredentialsError,
    DatabaseUnavailable,
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
    complete: bool = False
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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._helix = helix
        self._store = store
        self._metrics = metrics
        self._channels = tuple(channels)
        self._overrides = dict(retention_overrides)
        self._interval_s = interval_s
        self._limit = asyncio.Semaphore(concurrency)
        self._clock = clock
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
                        record.login, lease_s=LEASE_S, min_gap_s=min_gap_s
                    )
                except DatabaseUnavailable as exc:
                    outcome.error = str(exc)
                    return self._finish(outcome)
                if claim is None:
                    outcome.skipped = True
                    return self._finish(outcome)
                verified = False
                try:
                    seen = await self._read_listing(record, live, claim, outcome)
                    verified = await self._find_gone(record, seen, claim, outcome)
                except _EXPECTED as exc:
                    outcome.error = f"{exc.__class__.__name__}: {exc}"
                with contextlib.suppress(DatabaseUnavailable):
                    await self._store.channel_release(
                        record.login, complete=outcome.complete, verified=verified,
                        error=outcome.error,
                    )  # fmt: skip
                return self._finish(outcome)

    async def _read_listing(
        self,
        record: ChannelRecord,
        live: frozenset[str] | None,
        claim: Claim,
        outcome: ChannelOutcome,
    ) -> dict[str, HelixVideo]:
        seen: dict[str, HelixVideo] = {}
        cursors: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self._helix.videos_page(record.user_id, cursor)
            outcome.pages += 1
            self._report_rejected(page.rejected, outcome)
            known = await self._store.vod_durations([v.id for v in page.videos])
            rows = [self._row(v, record, live, known.get(v.id)) for v in page.videos]
            results = await self._store.vods_upsert(rows)
            inserted = sum(1 for was_new, _ in results.values() if was_new)
            if inserted:
                outcome.discovered += inserted
                self._metrics.vods_discovered.labels(record.login).inc(inserted)
            seen.update((v.id, v) for v in page.videos)
            if page.cursor is None:
                outcome.complete = True
                break
            if claim.catalogue_complete and known:
                break  # everything older was read by an earlier pass
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
        seen: Mapping[str, HelixVideo],
        claim: Claim,
        outcome: ChannelOutcome,
    ) -> bool:
        """Mark VODs that vanished from Twitch as gone; True if every unarchived one was checked."""
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
        if candidates:
            found, rejected = await self._helix.videos_by_id(candidates)
            if any(r.item_id == "?" for r in rejected):
                return False  # an answer item without an id: cannot tell who is missing
            unreadable = {r.item_id for r in rejected}
            vanished = [i for i in candidates if i not in found and i not in unreadable]
            outcome.gone = await self._store.vods_mark_gone(vanished)
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
