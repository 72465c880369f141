"""The download stage: queued VODs, in queue order, become verified mp4 files.

MAX_CONCURRENT_DOWNLOADS workers each loop: claim the next VOD (`FOR UPDATE SKIP LOCKED`, with a
lease renewed by every progress write), check that the disk has room, download, record. An
attempt ends in one of:
- `downloaded`, with the file and its size, and the runbook's moving average `avg_download_ms`;
- `failed_retryable` with `next_attempt_at` (capped exponential backoff on the failed attempts),
  or `failed_permanent` once DOWNLOAD_MAX_ATTEMPTS attempts have failed;
- `gone` (404, deleted on Twitch), `skipped_restricted` (subscriber-only, login required);
- `waiting_for_disk`, when the disk is too full to start or filled up midway (the fragments
  already fetched are kept for the resume); not a failure;
- `canceled` by POST /admin/vods/{id}/cancel: the download stops at once, its files go, and
  it is not a failure.
On shutdown a download in progress is put back in the queue with its fragments on disk; after a
kill, the restarted daemon releases its predecessor's claims at once and resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vodarchiver.db.store import Store
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.logs import bound_contextvars, get_logger
from vodarchiver.media.downloader import Downloaded, Downloader, Job
from vodarchiver.media.ytdlp import Failure, Outcome, Progress
from vodarchiver.metrics import Metrics
from vodarchiver.models import DownloadClaim, DownloadResult, DownloadState, VodState
from vodarchiver.pipeline.backoff import retry_delay_s
from vodarchiver.pipeline.rules import estimated_bytes, room_to_download
from vodarchiver.pipeline.vod_process import log_vod_process

LEASE_S = 60.0
PROGRESS_EVERY_S = 1.0  # at most one progress write a second per download
LOG_PROGRESS_EVERY_S = 15.0
IDLE_POLL_S = 5.0
_NEARLY_FULL = 256 * 2**20


@dataclass(frozen=True)
class DownloadPolicy:
    """The settings the stage runs by."""

    workers: int
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    min_free_bytes: int
    size_estimate_mbps: float


@dataclass
class _Attempt:
    """One claim being worked on: its token, and when it last wrote and logged progress."""

    claim: DownloadClaim
    token: str
    last: Progress | None = None
    written: float = 0.0
    logged: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class CancelResult:
    """What a cancel found: the state the VOD was in, or why nothing was done."""

    found: bool
    previous_state: str | None = None


class DownloadStage:
    """The workers, the registry of downloads running here, and cancellation."""

    def __init__(
        self,
        store: Store,
        downloader: Downloader,
        metrics: Metrics,
        *,
        data_dir: Path,
        policy: DownloadPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._downloader = downloader
        self._metrics = metrics
        self._data_dir = data_dir.resolve()
        self._policy = policy
        self._clock = clock
        # Who we are in `claimed_by`: an earlier run on this host and DATA_DIR shares the prefix.
        self._prefix = f"{socket.gethostname()}:{self._data_dir}:"
        self._owner = f"{self._prefix}{os.getpid()}:{int(time.time())}"
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopped: set[str] = set()  # attempts stopped on purpose (cancel, lost lease)
        self._wake = asyncio.Event()
        self._log = get_logger("vod_download")

    # --- running ----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Release what a killed predecessor held, then run the workers until cancelled."""
        with contextlib.suppress(DatabaseUnavailable):
            released = await self._store.download_release_previous(
                prefix=self._prefix, owner=self._owner
            )
            if released:
                self._log.info("downloads_resumed_after_restart", vods=released)
        async with asyncio.TaskGroup() as group:
            for n in range(self._policy.workers):
                group.create_task(self._worker(), name=f"download-{n}")

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll (new work, a cancel)."""
        self._wake.set()

    async def _worker(self) -> None:
        while True:
            if await self.run_once() is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_POLL_S):
                        await self._wake.wait()

    async def run_once(self) -> DownloadClaim | None:
        """Claim the next VOD and make one attempt at it; None when nothing is due."""
        # Every claim has its own token, so a worker whose lease was taken over can never write
        # over the new owner's claim, even from the same process.
        token = f"{self._owner}:{uuid.uuid4().hex[:8]}"
        try:
            claim = await self._store.download_claim(owner=token, lease_s=LEASE_S)
        except DatabaseUnavailable as exc:
            self._log.warning("download_claim_failed", reason=str(exc))
            return None
        if claim is not None:
            with bound_contextvars(vod_id=claim.vod_id, channel=claim.channel, corr=claim.corr):
                await self._attempt(_Attempt(claim, token))
        return claim

    def job(self, vod_id: str, channel: str, url: str, duration_s: int | None) -> Job:
        """Where a VOD's files go: DATA_DIR/<channel>/<vod id>/."""
        return Job(vod_id, url, duration_s, self._data_dir / channel / vod_id)

    async def _attempt(self, attempt: _Attempt) -> None:
        claim = attempt.claim
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always inside a worker task
        self._running[claim.vod_id] = task  # from the claim on, so a cancel always finds it
        heartbeat = asyncio.create_task(self._heartbeat(attempt, task))
        try:
            await self._attempt_owned(attempt)
        except DatabaseUnavailable as exc:
            self._log.warning("download_interrupted", reason=str(exc))  # the lease runs out
        except Exception as exc:  # a bug or the filesystem: a counted attempt, never a crash
            self._log.exception("download_crashed")
            reason = f"unexpected {exc.__class__.__name__}: {exc}"
            with contextlib.suppress(DatabaseUnavailable):
                await self._failed(attempt, Failure(Outcome.RETRY, reason[:500]))
        except asyncio.CancelledError:
            if claim.vod_id not in self._stopped:
                await asyncio.shield(self._requeue_on_shutdown(attempt))
                raise
            task.uncancel()
            await self._after_stop(attempt)
            if task.cancelling():  # a shutdown arrived as well: honour it
                raise
        finally:
            heartbeat.cancel()
            self._running.pop(claim.vod_id, None)
            self._stopped.discard(claim.vod_id)

    async def _attempt_owned(self, attempt: _Attempt) -> None:
        claim = attempt.claim
        if not claim.url:
            no_url = "Helix gave no URL for this VOD"
            await self._finish(
                attempt,
                DownloadResult(
                    VodState.FAILED_PERMANENT, DownloadState.FAILED_PERMANENT, 1, error=no_url
                ),
            )
            return
        job = self.job(claim.vod_id, claim.channel, claim.url, claim.duration_s)
        if not await self._has_room(attempt, job):
            return
        self._metrics.downloads_started.inc()
        self._log.info("download_started", url=claim.url, attempt=claim.failed_attempts + 1,
                       resume_bytes=job.partial_bytes())  # fmt: skip
        begin = time.monotonic()
        outcome = await self._downloader.download(job, functools.partial(self._report, attempt))
        elapsed = time.monotonic() - begin
        if isinstance(outcome, Downloaded):
            await self._succeeded(attempt, job, outcome, elapsed)
        else:
            await self._failed(attempt, outcome)

    async def _heartbeat(self, attempt: _Attempt, task: asyncio.Task[None]) -> None:
        """Renew the lease for the whole attempt (remux and checks write no progress)."""
        while True:
            await asyncio.sleep(LEASE_S / 3)
            try:
                owned = await self._store.download_heartbeat(
                    attempt.claim.row_id, owner=attempt.token, lease_s=LEASE_S
                )
            except DatabaseUnavailable:
                continue  # the lease outlasts a short outage
            if not owned:
                self._stop(attempt.claim.vod_id, task)
                return

    def _stop(self, vod_id: str, task: asyncio.Task[None]) -> None:
        self._stopped.add(vod_id)
        task.cancel()

    async def _after_stop(self, attempt: _Attempt) -> None:
        """A stopped attempt: remove its files only if the VOD really was canceled."""
        claim = attempt.claim
        job = self.job(claim.vod_id, claim.channel, claim.url or "", claim.duration_s)
        try:
            state = await self._store.vod_state(claim.row_id)
        except DatabaseUnavailable:
            state = None
        if state == VodState.CANCELED:
            self._downloader.remove_files(job)
            self._log.info("download_canceled", partial_files="removed")
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
        await self._finish(attempt, DownloadResult(
            VodState.WAITING_FOR_DISK, DownloadState.WAITING_FOR_DISK, 0,
            error=f"waiting for disk: {free / 2**30:.1f} GiB free, the download needs about "
                  f"{2 * estimate / 2**30:.1f} GiB and {self._policy.min_free_bytes / 2**30:.1f}"
                  " GiB must stay free",
        ))  # fmt: skip
        return False

    async def _succeeded(
        self, attempt: _Attempt, job: Job, done: Downloaded, elapsed_s: float
    ) -> None:
        recorded = await self._finish(attempt, DownloadResult(
            VodState.DOWNLOADED, DownloadState.DOWNLOADED, 0,
            file_path=done.path, file_size=done.size,
        ))  # fmt: skip
        if not recorded:
            with contextlib.suppress(DatabaseUnavailable):
                if await self._store.vod_state(attempt.claim.row_id) == VodState.CANCELED:
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
        if failure.outcome is Outcome.RETRY:
            # yt-dlp does not always say so (a fragment write fails, it retries, it gives up on
            # the fragment): a disk that is now nearly full was the cause, not the CDN.
            free = shutil.disk_usage(self._data_dir).free
            if free < max(self._policy.min_free_bytes, _NEARLY_FULL):
                failure = Failure(Outcome.NO_DISK, f"the disk is full ({failure.reason})")
        result = self.decide(attempt.claim.failed_attempts, failure)
        self._metrics.downloads_failed.inc()
        await self._finish(attempt, result)
        self._log.warning("download_failed", outcome=failure.outcome.value, reason=failure.reason,
                          state=result.state, next_attempt_at=result.next_attempt_at)  # fmt: skip

    def decide(self, failed_before: int, failure: Failure) -> DownloadResult:
        """What a failed attempt makes of the VOD. Pure apart from reading the clock."""
        reason = failure.reason
        if failure.outcome is Outcome.GONE:
            return DownloadResult(VodState.GONE, DownloadState.GONE, 0, error=reason)
        if failure.outcome is Outcome.RESTRICTED:
            return DownloadResult(
                VodState.SKIPPED_RESTRICTED, DownloadState.SKIPPED_RESTRICTED, 0, error=reason
            )
        if failure.outcome is Outcome.NO_DISK:
            return DownloadResult(
                VodState.WAITING_FOR_DISK, DownloadState.WAITING_FOR_DISK, 0, error=reason
            )
        failures = failed_before + 1
        if failures >= self._policy.max_attempts:
            return DownloadResult(VodState.FAILED_PERMANENT, DownloadState.FAILED_PERMANENT, 1,
                                  error=f"gave up after {failures} attempts: {reason}")  # fmt: skip
        delay = retry_delay_s(failures, base_s=self._policy.backoff_base_s,
                              cap_s=self._policy.backoff_max_s)  # fmt: skip
        return DownloadResult(VodState.FAILED_RETRYABLE, DownloadState.FAILED_RETRYABLE, 1,
                              next_attempt_at=self._clock() + timedelta(seconds=delay),
                              error=reason)  # fmt: skip

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

    async def _requeue_on_shutdown(self, attempt: _Attempt) -> None:
        with contextlib.suppress(DatabaseUnavailable):
            await self._finish(attempt, DownloadResult(VodState.QUEUED, DownloadState.PENDING, 0))
        self._log.info("download_interrupted", why="shutdown; fragments kept for the resume")

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
            task = asyncio.current_task()
            if task is not None:
                self._stop(claim.vod_id, task)
            return
        if now - state.logged >= LOG_PROGRESS_EVERY_S:
            state.logged = now
            self._log.info("download_progress", **progress.as_json())

    # --- cancel -------------------------------------------------------------------------------

    async def cancel(self, vod_id: str) -> CancelResult:
        """Cancel a VOD: recorded at once; a download running here stops within moments."""
        found = await self._store.vod_cancel(vod_id)
        if found is None:
            return CancelResult(False)
        previous, channel = found
        task = self._running.get(vod_id)
        if task is not None:
            self._stop(vod_id, task)
        elif previous != "downloading":
            # Not running anywhere: remove any fragments an earlier attempt left.
            Downloader.remove_files(self.job(vod_id, channel, "", None))
        get_logger("vod_download").info("vod_canceled", vod_id=vod_id, previous_state=previous)
        return CancelResult(True, previous)
