"""The upload stage: downloaded VODs become YouTube videos, exactly once, through anything.

MAX_CONCURRENT_UPLOADS workers each loop: pass the gates (a pause for quota or the upload limit,
the credentials, the circuit breaker), claim the next downloaded VOD (`FOR UPDATE SKIP LOCKED`,
a lease renewed by a heartbeat), plan its parts (splitting a VOD too long or too large for one
video), publish each part (publish.py), then mark it `uploaded` with `processed=1` and its
`youtube_url`. An attempt that does not publish ends in one of:
- back to `downloaded`, not a failure: the quota is spent (uploads pause until the next Pacific
  midnight), the channel's upload limit was hit (UPLOAD_LIMIT_COOLDOWN), or a shutdown;
- `waiting_for_auth`, not a failure: Google refused the refresh token; every VOD waiting for
  upload moves there, and a new token moves them back without a restart;
- `failed_retryable` with backoff, or `failed_permanent` after UPLOAD_MAX_ATTEMPTS, a file that
  changed, a request YouTube refuses (invalidTitle), or a video YouTube rejected. Counted
  failures feed the breaker; quota, auth and shutdowns do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vodarchiver import lifecycle
from vodarchiver.db.replay_store import ReplayStore
from vodarchiver.db.uploads import UploadStore
from vodarchiver.errors import (
    DatabaseUnavailable,
    LeaseLost,
    PermanentError,
    QuotaExhausted,
    TransientError,
    UploadsPaused,
    YouTubeAuthRevoked,
)
from vodarchiver.lifecycle import Event, RetryPolicy
from vodarchiver.logs import get_logger
from vodarchiver.media import splitter
from vodarchiver.metrics import Metrics
from vodarchiver.models import UploadClaim, UploadPart, VodState
from vodarchiver.pipeline import breaker
from vodarchiver.pipeline.leased import LeasedWorkers, Owner, idle_wait
from vodarchiver.pipeline.publish import Publisher, VideoRejected, fingerprint
from vodarchiver.pipeline.quota import QuotaPlan, next_reset
from vodarchiver.pipeline.upload_shared import Pause, SharedState
from vodarchiver.pipeline.vod_process import log_vod_process
from vodarchiver.youtube import metadata
from vodarchiver.youtube.oauth import GoogleAuth

LEASE_S = 60.0
IDLE_POLL_S = 5.0
AUTH_POLL_S = 10.0


@dataclass(frozen=True)
class UploadPolicy:
    """The settings the stage runs by."""

    workers: int
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    circuit_threshold: int
    circuit_cooldown: timedelta
    upload_limit_cooldown: timedelta
    max_part_duration_s: float
    max_part_bytes: int
    title_template: str
    description_template: str
    tags: tuple[str, ...]
    playlists: Mapping[str, str]
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    split_chapter_distance_s: float = 1800.0  # YOUTUBE_SPLIT_CHAPTER_DISTANCE
    poll_s: float = 60.0  # CLAIM_POLL_INTERVAL
    # Retention's hand-off (pipeline/retention.py): it decides when the local files go.
    after_upload: Callable[[int], Awaitable[None]] | None = None


class UploadStage:
    """The upload stage: the gates before a claim, and what each outcome records."""

    name = "upload"

    def __init__(
        self,
        store: UploadStore,
        publisher: Publisher,
        auth: GoogleAuth,
        quota: QuotaPlan,
        metrics: Metrics,
        *,
        data_dir: Path,
        policy: UploadPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease_s: float = LEASE_S,
        owner: Owner | None = None,
    ) -> None:
        self._store = store
        self._lease_s = lease_s
        self._publisher = publisher
        self._auth = auth
        self._metrics = metrics
        self._data_dir = data_dir.resolve()
        self._policy = policy
        self._clock = clock
        self._log = get_logger("vod_upload")
        self._shared = SharedState(store, quota, metrics, policy.circuit_cooldown)
        self._bootstrapped = False
        self._retry = RetryPolicy(policy.max_attempts, policy.backoff_base_s, policy.backoff_max_s)
        self.workers: LeasedWorkers[UploadClaim] = LeasedWorkers(
            self, store, owner or Owner(self._data_dir), workers=policy.workers, lease_s=lease_s,
            clock=clock,
        )  # fmt: skip

    # --- running ------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """The quota gauges from the start, then the workers until cancelled."""
        with contextlib.suppress(DatabaseUnavailable):
            await self._shared.quota_status(self._clock())
        await self.workers.run_forever()

    async def run_once(self) -> float:
        """Pass the gates, claim one VOD and make one attempt; seconds to wait before the next."""
        got = await self.workers.run_once()
        return got if isinstance(got, float) else 0.0

    # --- the leased-worker stage -------------------------------------------------------------

    async def release_previous(self, *, prefix: str, owner: str) -> list[str]:
        """Uploads a killed predecessor on this host and DATA_DIR held are released at once."""
        return await self._store.upload_release_previous(prefix=prefix, owner=owner)

    async def next(self, token: str, lease_s: float) -> UploadClaim | float:
        """Pass the gates and claim the next downloaded VOD, or say how long to wait."""
        self._metrics.processing_cycles.inc()
        now = self._clock()
        with contextlib.suppress(DatabaseUnavailable):
            await self._store.kv_set("last_process_run", now.isoformat())
        wait, probe = await self._gates(now)
        if wait is not None:
            return wait
        claim = await self._store.upload_claim(owner=token, lease_s=lease_s)
        if claim is None:
            if probe:  # nothing to probe with: let the next upload be the probe
                await self._shared.circuit(lambda c: breaker.on_neutral(c, self._clock()))
            return idle_wait(self._policy.poll_s, await self._store.upload_next_due())
        return claim

    async def heartbeat(self, claim: UploadClaim, token: str, lease_s: float) -> bool:
        """Renew the lease for the whole attempt."""
        return await self._store.upload_heartbeat(claim.row_id, owner=token, lease_s=lease_s)

    async def interrupted(self, claim: UploadClaim, token: str) -> None:
        """A shutdown: back to `downloaded`, the session kept to resume."""
        await self._end(claim, token, Event.UPLOAD_DEFERRED, error=None)
        self._log.info("upload_interrupted", why="shutdown; the session is kept to resume")

    async def stopped(self, claim: UploadClaim, token: str) -> None:
        """The VOD is no longer ours (canceled, skipped, or the lease taken over)."""
        try:
            state = await self._store.vod_state(claim.row_id)
        except DatabaseUnavailable:
            state = None
        if state in (VodState.CANCELED, VodState.SKIPPED):
            self._log.info("upload_canceled", state=state, why="the session is kept for a restore")
        else:  # our lease ran out: the new owner goes on from what YouTube holds
            self._log.warning("upload_taken_over", state=state)

    # --- gates --------------------------------------------------------------------------------

    async def _gates(self, now: datetime) -> tuple[float | None, bool]:
        """(None when an upload may start now, else how long to wait; whether it is the probe)."""
        if not self._bootstrapped:  # YT_REFRESH_TOKEN, stored once the database answers
            await self._auth.bootstrap()
            self._bootstrapped = True
        pause = await self._shared.read_pause()
        if pause is not None and now < pause.until:
            return min(IDLE_POLL_S * 6, max(0.5, (pause.until - now).total_seconds())), False
        if pause is not None:
            await self._shared.clear_pause()
            self._log.info("uploads_resumed", after=pause.reason)
        if self._auth.revoked is not None:
            try:
                recovered = await self._auth.recover()
            except TransientError:
                return AUTH_POLL_S, False
            if not recovered:
                if self._auth.refused:
                    await self._store.vods_auth(waiting=True)
                return AUTH_POLL_S, False
            moved = await self._store.vods_auth(waiting=False)
            self._metrics.youtube_auth_waiting.set(0)
            self._log.info("uploads_resumed", after="auth", vods=len(moved))
        allowed, probe = await self._shared.circuit_allows(now)
        return (None if allowed else IDLE_POLL_S), probe

    # --- one attempt --------------------------------------------------------------------------

    async def attempt(self, claim: UploadClaim, token: str) -> bool | None:
        """Publish every part; the outcome is recorded whatever happens."""
        begin = time.monotonic()
        try:
            return await self._publish_all(claim, token, begin)
        except UploadsPaused as exc:
            await self._paused(claim, token, exc)
        except VideoRejected as exc:
            await self._end(claim, token, Event.UPLOAD_GAVE_UP, error=str(exc))
            self._metrics.uploads_failed.inc()
            self._log.error("upload_rejected", reason=str(exc))
            return False
        except (DatabaseUnavailable, LeaseLost) as exc:
            self._log.warning("upload_interrupted", reason=str(exc))  # the lease runs out
        except (TransientError, PermanentError) as exc:
            await self._failed(claim, token, exc)
            return False
        except Exception as exc:  # a bug or the filesystem: a counted attempt, never a crash
            self._log.exception("upload_crashed")
            await self._failed(claim, token, exc)
            return False
        return None

    async def _publish_all(self, claim: UploadClaim, token: str, begin: float) -> bool | None:
        parts = await self._parts(claim)
        self._log.info("upload_started", parts=len(parts), attempt=claim.failed_attempts + 1,
                       done=sum(1 for p in parts if p.video_id))  # fmt: skip
        marks = await ReplayStore(self._store.pool).chapter_marks(claim.vod_id)  # issue 13
        facts = metadata.VodFacts(claim.vod_id, claim.channel, claim.title, claim.created_at,
                                  claim.url, claim.duration_s, claim.muted_segments,
                                  marks, generation=claim.generation)  # fmt: skip
        videos: list[str] = []
        for part in parts:
            video_id = part.video_id
            if video_id is None:
                end = part.start_s + (part.duration_s or claim.duration_s)
                span = metadata.PartSpan(part.part, part.parts, part.start_s, end)
                meta = metadata.build(
                    facts, span, title_template=self._policy.title_template,
                    description_template=self._policy.description_template,
                    tags=self._policy.tags,
                )  # fmt: skip
                published = await self._publisher.publish(
                    claim.row_id, part, meta,
                    still_ours=lambda: self._store.upload_heartbeat(
                        claim.row_id, owner=token, lease_s=self._lease_s),
                )  # fmt: skip
                video_id = published.video_id
                await self._publisher.verify(claim.row_id, part, video_id)
            if not part.playlist_added:
                await self._playlist(claim, part, video_id)
            videos.append(video_id)
        elapsed = time.monotonic() - begin
        url = f"https://www.youtube.com/watch?v={videos[0]}"
        total_s = await self._store.upload_done(claim.row_id, owner=token, youtube_url=url)
        if total_s is None:
            self._log.info("upload_result_not_recorded", why="taken over meanwhile")
            return None
        self._metrics.uploads_succeeded.inc()
        self._metrics.upload_duration.observe(elapsed)
        self._metrics.processing_total_duration.observe(total_s)
        with contextlib.suppress(DatabaseUnavailable):
            await self._store.kv_ema("avg_upload_ms", elapsed * 1000)
            await self._store.kv_ema("avg_total_ms", total_s * 1000)
        await self._shared.circuit(breaker.on_success)
        self._log.info("upload_finished", youtube_url=url, videos=videos,
                       up_ms=round(elapsed * 1000))  # fmt: skip
        await log_vod_process(self._store, "vod_processed", upl_ms=elapsed * 1000,
                              total_ms=total_s * 1000)  # fmt: skip
        if claim.delete_old_videos:
            await self._delete_old_videos(claim)
        if self._policy.after_upload is not None:
            await self._policy.after_upload(claim.row_id)
        return True

    async def _delete_old_videos(self, claim: UploadClaim) -> None:
        """A reprocess asked for it: the earlier generation's videos go, now that every new
        part is confirmed. A failure is logged and left for the operator; never a new upload."""
        for old in await self._store.history_to_delete(claim.row_id):
            try:
                await self._publisher.pay("videos.delete")
                await self._publisher.client.video_delete(str(old["video_id"]))
            except (TransientError, PermanentError, QuotaExhausted) as exc:
                self._log.warning("old_video_delete_failed", video_id=old["video_id"],
                                  reason=str(exc))  # fmt: skip
                continue
            await self._store.history_deleted(claim.row_id, int(old["generation"]),
                                              int(old["part"]))  # fmt: skip
            self._log.info("old_video_deleted", video_id=old["video_id"],
                           generation=old["generation"], part=old["part"])  # fmt: skip

    async def _parts(self, claim: UploadClaim) -> list[UploadPart]:
        """The VOD's recorded parts; planned (and split) at the first attempt."""
        parts = await self._store.upload_parts(claim.row_id)
        if parts:
            return parts
        path = claim.file_path
        size = (await asyncio.to_thread(path.stat)).st_size
        duration = float(claim.duration_s)
        policy = self._policy
        count = splitter.parts_needed(duration, size, max_duration_s=policy.max_part_duration_s,
                                      max_bytes=policy.max_part_bytes)  # fmt: skip
        if count == 1:
            pieces = [splitter.Piece(path, 0.0, duration, size)]
        else:
            self._log.info("upload_splitting", parts=count, duration_s=duration, size=size)
            marks = await ReplayStore(self._store.pool).chapter_marks(claim.vod_id)  # issue 13
            limit = splitter.part_limit_s(duration, size, max_duration_s=policy.max_part_duration_s,
                                          max_bytes=policy.max_part_bytes)  # fmt: skip
            points = splitter.plan_cuts(duration, count, limit_s=limit, chapter_starts=[
                at for at, _ in marks], distance_s=policy.split_chapter_distance_s)  # fmt: skip
            pieces = await splitter.split(path, count, duration_s=duration, points=points,
                                          ffmpeg_bin=self._policy.ffmpeg,
                                          ffprobe_bin=self._policy.ffprobe)  # fmt: skip
        planned = [
            UploadPart(
                part=n, parts=len(pieces), file_path=str(p.path), file_size=p.size,
                fingerprint=await asyncio.to_thread(fingerprint, p.path),
                start_s=p.start_s, duration_s=p.duration_s,
                marker=metadata.marker(claim.vod_id, n, len(pieces), claim.generation),
            )
            for n, p in enumerate(pieces, start=1)
        ]  # fmt: skip
        await self._store.upload_parts_insert(claim.row_id, planned)
        return await self._store.upload_parts(claim.row_id)

    async def _playlist(self, claim: UploadClaim, part: UploadPart, video_id: str) -> None:
        playlist = self._policy.playlists.get(claim.channel)
        if not playlist:
            return
        try:
            await self._publisher.pay("playlistItems.insert")
            await self._publisher.client.playlist_add(playlist, video_id)
        except (TransientError, PermanentError, QuotaExhausted) as exc:
            # The video is published; the playlist is a courtesy that must not republish it.
            self._log.warning("upload_playlist_failed", part=part.part, reason=str(exc))
            return
        await self._store.upload_playlist_added(claim.row_id, part.part)

    # --- outcomes -----------------------------------------------------------------------------

    async def _end(self, claim: UploadClaim, token: str, event: Event, *, error: str | None,
                   delay_s: float = 0.0) -> bool:  # fmt: skip
        """Record the lifecycle's transition for `event` from `uploading`, if still ours."""
        done = lifecycle.record(
            lifecycle.transition_for(event, VodState.UPLOADING), VodState.UPLOADING,
            now=self._clock(), delay_s=delay_s, error=error,
        )  # fmt: skip
        try:
            return await self._store.upload_finish(
                claim.row_id, owner=token, state=done.target.value, failed=int(done.failure),
                next_attempt_at=done.next_attempt_at, error=error,
            )  # fmt: skip
        except DatabaseUnavailable as exc:
            self._log.warning("upload_record_failed", reason=str(exc), state=done.target)
            return False

    async def _paused(self, claim: UploadClaim, token: str, exc: UploadsPaused) -> None:
        now = self._clock()
        await self._shared.circuit(lambda c: breaker.on_neutral(c, now))
        if isinstance(exc, YouTubeAuthRevoked):
            refused = self._auth.refused
            event = Event.AUTH_REFUSED if refused else Event.UPLOAD_DEFERRED
            await self._end(claim, token, event, error=str(exc))
            if refused:
                await self._store.vods_auth(waiting=True)
                self._metrics.youtube_auth_waiting.set(1)
            self._log.warning("uploads_waiting_for_auth", reason=str(exc))
            return
        # Quota resets at Pacific midnight; the other pause is uploadLimitExceeded's cooldown.
        quota = isinstance(exc, QuotaExhausted)
        until = next_reset(now) if quota else now + self._policy.upload_limit_cooldown
        await self._shared.set_pause(Pause(until, exc.reason))
        await self._end(claim, token, Event.UPLOAD_DEFERRED,
                        error=f"{exc} (uploads resume {until.isoformat()})")  # fmt: skip
        self._metrics.uploads_paused.labels(reason=exc.reason).inc()
        self._log.warning("uploads_paused", reason=exc.reason, until=until.isoformat(),
                          detail=str(exc))  # fmt: skip

    async def _failed(self, claim: UploadClaim, token: str, exc: BaseException) -> None:
        reason = f"{exc.__class__.__name__}: {exc}" if not str(exc) else str(exc)
        decision = lifecycle.retry_decision(
            "upload", claim.failed_attempts, reason[:500],
            permanent=isinstance(exc, PermanentError), policy=self._retry,
        )  # fmt: skip
        recorded = await self._end(claim, token, decision.event, error=decision.reason[:500],
                                   delay_s=decision.delay_s)  # fmt: skip
        self._metrics.uploads_failed.inc()
        now = self._clock()
        before, after = await self._shared.circuit(lambda c: breaker.on_failure(
            c, now, threshold=self._policy.circuit_threshold,
            cooldown=self._policy.circuit_cooldown))  # fmt: skip
        if after.state is breaker.CircuitState.OPEN and before.state is not after.state:
            until = after.open_until.isoformat() if after.open_until else None
            self._log.error("circuit opened", failures=after.failures, open_until=until,
                            recorded=recorded)  # fmt: skip
        self._log.warning("upload_failed", reason=decision.reason,
                          attempt=claim.failed_attempts + 1,
                          permanent=decision.event is Event.UPLOAD_GAVE_UP)  # fmt: skip

    # --- status -------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """`/status`'s `uploads`: whether and until when they wait, quota, rejected videos."""
        pause = await self._shared.read_pause()
        now = self._clock()
        waiting = pause is not None and now < pause.until
        auth = self._auth.revoked
        return {
            "enabled": True,
            "paused": waiting or auth is not None,
            "paused_reason": pause.reason if waiting and pause else ("auth" if auth else None),
            "resume_at": pause.until.isoformat() if waiting and pause else None,
            "waiting_for_auth": auth,
            "quota": await self._shared.quota_status(now),
            "rejected": [dict(row) for row in await self._store.uploads_rejected()],
        }
