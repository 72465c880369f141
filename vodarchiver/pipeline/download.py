"""The download stage: queued VODs, in queue order, become verified mp4 files.

MAX_CONCURRENT_DOWNLOADS workers each loop: claim the next VOD (`FOR UPDATE SKIP LOCKED`, with a
lease renewed by a heartbeat and by every progress write), check that the disk has room,
download, record. An attempt ends in one of:
- `downloaded`, with the file and its size, and the runbook's moving average `avg_download_ms`;
- `failed_retryable` with `next_attempt_at` (capped exponential backoff on the failed attempts),
  or `failed_permanent` once DOWNLOAD_MAX_ATTEMPTS attempts have failed;
- `gone` (404, deleted on Twitch), `skipped_restricted` (subscriber-only, login required);
- `waiting_for_disk`, when the free-space check finds too little room before it starts, or the
  disk filled up midway (a real ENOSPC: in yt-dlp's or ffmpeg's output, or an OSError's errno);
  not a failure. The fragments already fetched are kept for the resume, until the VOD has
  waited DISK_FULL_RELEASE_AFTER without progress: then they are removed, so a disk that stays
  full is not held at 100 %, and the download starts again from scratch once space returns;
- stopped by an operator (cancel, skip: the row is no longer ours): the download stops at once,
  its files go, and it is not a failure.
The transitions are the lifecycle's (lifecycle.py); claiming, the heartbeat, stops and the owner
identity are the shared leased-worker mechanism (leased.py).
On shutdown a download in progress is put back in the queue with its fragments on disk; after a
kill, the restarted daemon releases its predecessor's claims at once and resumes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from vodarchiver import lifecycle
from vodarchiver.db.store import Store
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.lifecycle import Event, RetryPolicy
from vodarchiver.logs import get_logger
from vodarchiver.media.downloader import Downloaded, Downloader, Job
from vodarchiver.media.ytdlp import Failure, Outcome, Progress, disk_full_error
from vodarchiver.metrics import Metrics
from vodarchiver.models import DownloadClaim, DownloadResult, DownloadState, VodState
from vodarchiver.pipeline.leased import LeasedWorkers, Owner, idle_wait
from vodarchiver.pipeline.rules import disk_wait_over, estimated_bytes, room_to_download
from vodarchiver.pipeline.vod_process import log_vod_process

LEASE_S = 60.0
PROGRESS_EVERY_S = 1.0  # at most one progress write a second per download
LOG_PROGRESS_EVERY_S = 15.0


@dataclass(frozen=True)
class DownloadPolicy:
    """The settings the stage runs by."""

    workers: int
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    min_free_bytes: int
    size_estimate_mbps: float
    release_after_s: float = 1800.0  # DISK_FULL_RELEASE_AFTER
    poll_s: float = 60.0  # CLAIM_POLL_INTERVAL


@dataclass
class _Attempt:
    """One claim being worked on: its token, and when it last wrote and logged progress."""

    claim: DownloadClaim
    token: str
    last: Progress | None = None
    written: float = 0.0
    logged: float = field(default_factory=time.monotonic)


# What each way an attempt can end becomes: the lifecycle event and the download_state beside it.
_EVENTS: dict[Outcome, tuple[Event, DownloadState]] = {
    Outcome.GONE: (Event.DOWNLOAD_GONE, DownloadState.GONE),
    Outcome.RESTRICTED: (Event.DOWNLOAD_RESTRICTED, DownloadState.SKIPPED_RESTRICTED),
    Outcome.NO_DISK: (Event.DISK_FULL, DownloadState.WAITING_FOR_DISK),
}
_DOWNLOAD_STATE: dict[Event, DownloadState] = {
    **dict(_EVENTS.values()),
    Event.DOWNLOAD_FAILED: DownloadState.FAILED_RETRYABLE,
    Event.DOWNLOAD_GAVE_UP: DownloadState.FAILED_PERMANENT,
    Event.DOWNLOAD_SUCCEEDED: DownloadState.DOWNLOADED,
    Event.DOWNLOAD_INTERRUPTED: DownloadState.PENDING,
}


class DownloadStage:
    """The download stage: what a claim, an attempt and a stop mean for a download."""

    name = "download"

    def __init__(
        self,
        store: Store,
        downloader: Downloader,
        metrics: Metrics,
        *,
        data_dir: Path,
        policy: DownloadPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owner: Owner | None = None,
    ) -> None:
        self._store = store
        self._downloader = downloader
        self._metrics = metrics
        self._data_dir = data_dir.resolve()
        self._policy = policy
        self._clock = clock
        self._retry = RetryPolicy(policy.max_attempts, policy.backoff_base_s, policy.backoff_max_s)
        self.workers: LeasedWorkers[DownloadClaim] = LeasedWorkers(
            self, store, owner or Owner(self._data_dir), workers=policy.workers, lease_s=LEASE_S,
            clock=clock,
        )  # fmt: skip
        self._progress: dict[str, _Attempt] = {}
        self._log = get_logger("vod_download")

    # --- running ----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Run the workers until cancelled."""
        await self.workers.run_forever()

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll (new work, a cancel)."""
        self.workers.wake()

    async def run_once(self) -> DownloadClaim | None:
        """Claim the next VOD and make one attempt at it; None when nothing is due."""
        got = await self.workers.run_once()
        return None if isinstance(got, float) else got

    # --- the leased-worker stage -------------------------------------------------------------

    async def release_previous(self, *, prefix: str, owner: str) -> list[str]:
        """Claims a killed predecessor on this host and DATA_DIR left are released at once."""
        return await self._store.download_release_previous(prefix=prefix, owner=owner)

    async def next(self, token: str, lease_s: float) -> DownloadClaim | float:
        """The next VOD to download, or how long to wait for one."""
        claim = await self._store.download_claim(owner=token, lease_s=lease_s)
        if claim is None:
            return idle_wait(self._policy.poll_s, await self._store.download_next_due())
        return claim

    async def heartbeat(self, claim: DownloadClaim, token: str, lease_s: float) -> bool:
        """Renew the lease for the whole attempt (remux and checks write no progress)."""
        return await self._store.download_heartbeat(claim.row_id, owner=token, lease_s=lease_s)

    async def attempt(self, claim: DownloadClaim, token: str) -> bool | None:
        """One attempt; any unexpected error is a counted attempt, never a crash."""
        attempt = _Attempt(claim, token)
        self._progress[token] = attempt
        try:
            return await self._attempt_owned(attempt)
        except DatabaseUnavailable as exc:
            self._log.warning("download_interrupted", reason=str(exc))  # the lease runs out
            return None
        except Exception as exc:  # a bug or the filesystem: a counted attempt, never a crash
            self._log.exception("download_crashed")
            reason = f"unexpected {exc.__class__.__name__}: {exc}"
            outcome = Outcome.NO_DISK if disk_full_error(exc) else Outcome.RETRY
            with contextlib.suppress(DatabaseUnavailable):
                await self._failed(attempt, Failure(outcome, reason[:500]))
            return False
        finally:
            self._progress.pop(token, None)

    async def interrupted(self, claim: DownloadClaim, token: str) -> None:
        """A shutdown: back in the queue, with the fragments on disk for the resume."""
        with contextlib.suppress(DatabaseUnavailable):
            await self._finish(_Attempt(claim, token), self._result(Event.DOWNLOAD_INTERRUPTED))
        self._log.info("download_interrupted", why="shutdown; fragments kept for the resume")

    def job(self, vod_id: str, channel: str, url: str, duration_s: int | None) -> Job:
        """Where a VOD's files go: DATA_DIR/<channel>/<vod id>/."""
        return Job(vod_id, url, duration_s, self._data_dir / channel / vod_id)

    async def _attempt_owned(self, attempt: _Attempt) -> bool | None:
        claim = attempt.claim
        if not claim.url:
            await self._finish(attempt, self._result(
                Event.DOWNLOAD_GAVE_UP, error="Helix gave no URL for this VOD"))  # fmt: skip
            return False
        job = self.job(claim.vod_id, claim.channel, claim.url, claim.duration_s)
        if claim.discard_files:  # a reprocess: download again, never reuse the old file
            self._downloader.remove_files(job)
            self._log.info("download_old_files_removed", why="reprocess")
        if not await self._has_room(attempt, job):
            return None
        self._metrics.downloads_started.inc()
        before = job.partial_bytes()
        self._log.info("download_started", url=claim.url, attempt=claim.failed_attempts + 1,
                       resume_bytes=before)  # fmt: skip
        begin = time.monotonic()
        outcome = await self._downloader.download(job, functools.partial(self._report, attempt))
        elapsed = time.monotonic() - begin
        if isinstance(outcome, Downloaded):
            await self._succeeded(attempt, job, outcome, elapsed)
            return True
        if outcome.outcome is Outcome.NO_DISK:
            note = self._waiting_for_disk(job, progressed=job.partial_bytes() > before)
            outcome = Failure(outcome.outcome, outcome.reason + note)
        else:
            self._downloader.clear_waiting(job)
        await self._failed(attempt, outcome)
        return False

    async def stopped(self, claim: DownloadClaim, token: str) -> None:
        """A stopped attempt: remove its files only if an operator stopped the VOD."""
        job = self.job(claim.vod_id, claim.channel, claim.url or "", claim.duration_s)
        try:
            state = await self._store.vod_state(claim.row_id)
        except DatabaseUnavailable:
            state = None
        if state in (VodState.CANCELED, VodState.SKIPPED):
            self._downloader.remove_files(job)
            self._log.info("download_canceled", state=state, partial_files="removed")
        else:  # taken over (our lease ran out): the new owner resumes from these files
            self._log.warning("download_taken_over", state=state, partial_files="kept")

    async def _has_room(self, attempt: _Attempt, job: Job) -> bool:
        claim = attempt.claim
        free = shutil.disk_usage(self._data_dir).free
        self._metrics.disk_free_bytes.set(free)
        estimate = estimated_bytes(claim.duration_s, self._policy.size_estimate_mbps)
        partial = job.partial_bytes()
        if room_to_download(free_bytes=free, estimate_bytes=estimate, partial_bytes=partial,
                            min_free_bytes=self._policy.min_free_bytes):  # fmt: skip
            return True
        self._log.warning("download_waiting_for_disk", free_bytes=free, estimate_bytes=estimate,
                          min_free_bytes=self._policy.min_free_bytes)  # fmt: skip
        note = self._waiting_for_disk(job, progressed=False)  # still ours: nobody else downloads
        await self._finish(attempt, self._result(
            Event.DISK_FULL,
            error=f"waiting for disk: {free / 2**30:.1f} GiB free, the download needs about "
                  f"{2 * estimate / 2**30:.1f} GiB and {self._policy.min_free_bytes / 2**30:.1f}"
                  f" GiB must stay free{note}",
        ))  # fmt: skip
        return False

    def _waiting_for_disk(self, job: Job, *, progressed: bool) -> str:
        """Keep a waiting VOD's partial files for the resume, or release them once it has waited
        DISK_FULL_RELEASE_AFTER without progress; what the VOD's error should add about it.

        The wait's start is the mtime of an empty marker file beside the files (so it lives and
        goes with them), set from the stage's clock at the first disk-full outcome and again
        whenever an attempt got further before the disk filled up again.
        """
        now = self._clock()
        since = self._downloader.waiting_since(job)
        if since is None or progressed:
            if not self._downloader.mark_waiting(job, now):
                return ""  # no files to keep (or not even an inode to say since when)
            since = now
        if not disk_wait_over(waiting_since=since, now=now,
                              release_after_s=self._policy.release_after_s):  # fmt: skip
            return ""
        freed = self._downloader.release(job)
        if not freed:
            return ""
        waited_s = (now - since).total_seconds()
        self._log.warning("download_partial_released", freed_bytes=freed, waited_s=round(waited_s),
                          why="the disk stayed full past DISK_FULL_RELEASE_AFTER; the download "
                              "starts again from scratch once space returns")  # fmt: skip
        return (f"; its partial files ({freed / 2**20:.1f} MiB) were removed after "
                f"waiting {waited_s / 60:.0f} min, the download starts again once space "
                "returns")  # fmt: skip

    async def _succeeded(
        self, attempt: _Attempt, job: Job, done: Downloaded, elapsed_s: float
    ) -> None:
        result = self._result(Event.DOWNLOAD_SUCCEEDED)
        recorded = await self._finish(
            attempt, dataclasses.replace(result, file_path=done.path, file_size=done.size)
        )
        if not recorded:
            with contextlib.suppress(DatabaseUnavailable):
                state = await self._store.vod_state(attempt.claim.row_id)
                if state in (VodState.CANCELED, VodState.SKIPPED):
                    self._downloader.remove_files(job)  # canceled while we were finishing
                    self._log.info("download_canceled", partial_files="removed", after="success")
            return
        self._metrics.downloads_succeeded.inc()
        self._metrics.download_duration.observe(elapsed_s)
        self._metrics.download_bytes.inc(done.fetched_bytes)
        with contextlib.suppress(DatabaseUnavailable):
            await self._store.kv_ema("avg_download_ms", elapsed_s * 1000)
        self._log.info(
            "download_finished", file=str(done.path), size_bytes=done.size,
            fetched_bytes=done.fetched_bytes, duration_s=round(done.duration_s, 1),
            dl_ms=round(elapsed_s * 1000), recorded=recorded,
            remux="during_download" if done.streamed else "after_download",
        )  # fmt: skip
        await log_vod_process(self._store, "vod_downloaded", dl_ms=elapsed_s * 1000)

    async def _failed(self, attempt: _Attempt, failure: Failure) -> None:
        # Only a real ENOSPC (in yt-dlp's or ffmpeg's output, or our own OSError) is NO_DISK:
        # little free space alone proves nothing, and a failure relabelled "disk full" would
        # never be counted or given up.
        result = self.decide(attempt.claim.failed_attempts, failure)
        self._metrics.downloads_failed.inc()
        await self._finish(attempt, result)
        self._log.warning("download_failed", outcome=failure.outcome.value, reason=failure.reason,
                          state=result.state, next_attempt_at=result.next_attempt_at)  # fmt: skip

    def decide(self, failed_before: int, failure: Failure) -> DownloadResult:
        """What a failed attempt makes of the VOD: the lifecycle's event for its kind of failure,
        or its retry decision. Pure apart from reading the clock."""
        mapped = _EVENTS.get(failure.outcome)
        if mapped is not None:
            return self._result(mapped[0], error=failure.reason)
        decision = lifecycle.retry_decision("download", failed_before, failure.reason,
                                            permanent=False, policy=self._retry)  # fmt: skip
        return self._result(decision.event, error=decision.reason, delay_s=decision.delay_s)

    def _result(self, event: Event, *, error: str | None = None, delay_s: float = 0.0
                ) -> DownloadResult:  # fmt: skip
        """The lifecycle's transition for `event` from `downloading`, as the row records it."""
        done = lifecycle.record(
            lifecycle.transition_for(event, VodState.DOWNLOADING), VodState.DOWNLOADING,
            now=self._clock(), delay_s=delay_s, error=error,
        )  # fmt: skip
        return DownloadResult(done.target, _DOWNLOAD_STATE[event], int(done.failure),
                              next_attempt_at=done.next_attempt_at, error=error)  # fmt: skip

    async def _finish(self, attempt: _Attempt, result: DownloadResult) -> bool:
        try:
            recorded = await self._store.download_finish(
                attempt.claim.row_id, owner=attempt.token, result=result
            )
        except DatabaseUnavailable as exc:
            # The lease runs out and the VOD is taken again; nothing is lost.
            self._log.warning("download_record_failed", reason=str(exc), state=result.state)
            return False
        if not recorded:
            self._log.info("download_result_not_recorded", state=result.state,
                           why="canceled or taken over meanwhile")  # fmt: skip
        return recorded

    async def _report(self, state: _Attempt, progress: Progress) -> None:
        """Every progress line comes here; at most one a second is written, fewer logged."""
        last, state.last = state.last, progress
        if progress.finished and progress.fragment_count is None and last is not None:
            # yt-dlp's final line carries no fragment counts: keep the ones it gave last.
            count = last.fragment_count
            progress = dataclasses.replace(progress, fragment_index=count, fragment_count=count)
            state.last = progress
        now = time.monotonic()
        if now - state.written < PROGRESS_EVERY_S and not progress.finished:
            return
        state.written = now
        claim = state.claim
        try:
            owned = await self._store.download_progress(
                claim.row_id, owner=state.token, lease_s=LEASE_S, progress=progress.as_json()
            )
        except DatabaseUnavailable:
            return  # progress is best effort; the lease outlasts a short outage
        if not owned:  # canceled (here or on another replica) or taken over: stop now
            self.workers.stop(claim.vod_id)
            return
        if now - state.logged >= LOG_PROGRESS_EVERY_S:
            state.logged = now
            self._log.info("download_progress", **progress.as_json())
