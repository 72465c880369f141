"""One part of a VOD to one YouTube video, exactly once, resuming wherever it stopped.

The order of things is what makes it crash-safe:
1. A part with a stored session asks YouTube how much it holds (`bytes */total`) and continues
   from there; a session that already completed answers with its video, which is adopted.
2. A part whose session expired (404/410), or that had a session before, is looked for in the
   channel's uploads by its marker before anything new is started: a video YouTube stored but we
   never recorded is adopted, not uploaded again.
3. Only then is a new session opened, after the quota planner has paid for it, and its URI is
   committed to PostgreSQL before the first byte is sent.
4. Chunks stream from disk; after a failed chunk (5xx, a cut connection) the part asks YouTube
   what it holds and resumes from that byte, with backoff, never from byte 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vodarchiver.db.uploads import UploadStore
from vodarchiver.errors import (
    LeaseLost,
    PermanentError,
    QuotaExhausted,
    UploadSessionExpired,
    YouTubeUnavailable,
)
from vodarchiver.logs import get_logger
from vodarchiver.metrics import Metrics
from vodarchiver.models import UploadPart
from vodarchiver.pipeline.backoff import backoff_s
from vodarchiver.pipeline.quota import QuotaPlan
from vodarchiver.youtube.client import SessionStatus, YouTubeClient
from vodarchiver.youtube.metadata import VideoMetadata

_FINGERPRINT_SPAN = 2**20
_PROGRESS_EVERY_S = 2.0


class FileChanged(PermanentError):
    """A part's file is missing or differs from the one whose upload began."""


class VideoRejected(PermanentError):
    """YouTube took the upload but rejected or failed the video; the reason says why."""


def fingerprint(path: Path) -> str:
    """Size plus a hash of the first and last MiB: cheap, and enough to see a replaced file."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(_FINGERPRINT_SPAN))
        if size > _FINGERPRINT_SPAN:
            f.seek(max(_FINGERPRINT_SPAN, size - _FINGERPRINT_SPAN))
            digest.update(f.read(_FINGERPRINT_SPAN))
    return f"{size}:{digest.hexdigest()[:32]}"


@dataclass(frozen=True)
class PublishPolicy:
    """How one part is sent."""

    chunk_size: int
    chunk_retries: int  # status queries after failed chunks, in one attempt, before giving up
    retry_base_s: float
    retry_cap_s: float
    marker_pages: int  # pages of 50 uploads searched for a marker
    category_id: str
    privacy: str


@dataclass(frozen=True)
class Published:
    """A part that is a video now."""

    video_id: str
    upload_status: str | None
    adopted: bool
    sent_bytes: int


class Publisher:
    """Sends parts; shared by the stage's workers."""

    def __init__(
        self,
        store: UploadStore,
        client: YouTubeClient,
        quota: QuotaPlan,
        metrics: Metrics,
        policy: PublishPolicy,
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._client = client
        self._quota = quota
        self._metrics = metrics
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._uploads_playlist: str | None = None
        self._log = get_logger("vod_upload")

    @property
    def client(self) -> YouTubeClient:
        """The YouTube client (the stage adds playlist items through it)."""
        return self._client

    # --- quota --------------------------------------------------------------------------------

    async def pay(self, call: str) -> None:
        """Charge a call to its bucket, or QuotaExhausted when the day's budget cannot pay it."""
        charge = self._quota.charge(call, self._clock())
        used = await self._store.quota_charge(charge.key, charge.units, charge.budget)
        if used is None:
            self._metrics.youtube_quota_used.labels(bucket=charge.bucket).set(charge.budget)
            self._metrics.youtube_quota_remaining.labels(bucket=charge.bucket).set(0)
            raise QuotaExhausted(
                f"the {charge.bucket!r} quota cannot pay for {call} ({charge.units} units) today"
            )
        self._metrics.youtube_quota_used.labels(bucket=charge.bucket).set(used)
        self._metrics.youtube_quota_remaining.labels(bucket=charge.bucket).set(
            max(0, charge.budget - used)
        )

    async def exhausted(self, call: str) -> None:
        """YouTube said quotaExceeded: the bucket that pays for `call` is spent for the day."""
        charge = self._quota.charge(call, self._clock())
        await self._store.quota_exhaust(charge.key, charge.budget)
        self._metrics.youtube_quota_used.labels(bucket=charge.bucket).set(charge.budget)
        self._metrics.youtube_quota_remaining.labels(bucket=charge.bucket).set(0)

    # --- one part -----------------------------------------------------------------------------

    async def publish(
        self, row_id: int, part: UploadPart, meta: VideoMetadata,
        still_ours: Callable[[], Awaitable[bool]] | None = None,
    ) -> Published:  # fmt: skip
        """Make `part` a video, exactly once; the errors of errors.py otherwise.

        `still_ours` is asked right before a new session is opened: a worker that lost its claim
        (a replica frozen past its lease) must not start a second upload of the same part.
        """
        path = Path(part.file_path)
        await self._check_file(path, part)
        sent_before = 0
        status: SessionStatus | None = None
        uri = part.session_uri
        if uri is not None:
            try:
                status = await self._query(uri, part.file_size)
            except UploadSessionExpired:
                self._log.info("upload_session_expired", part=part.part)
                await self._store.upload_session_clear(row_id, part.part)
                uri = None
            else:
                if status.video is not None:
                    return await self._done(row_id, part, status, adopted=False, sent=0)
                self._log.info("upload_resumed", part=part.part, offset=status.offset,
                               size=part.file_size)  # fmt: skip
        searched = False
        sessions_this_attempt = 0
        while True:
            if uri is None:
                if part.sessions_started > 0 or sessions_this_attempt > 0:
                    found = await self._find(part.marker) if not searched else None
                    searched = True
                    if found is not None:
                        self._log.info("upload_adopted", part=part.part, video_id=found,
                                       why="found by its marker")  # fmt: skip
                        return await self._done(row_id, part, SessionStatus(-1, {"id": found}),
                                                adopted=True, sent=sent_before)  # fmt: skip
                if sessions_this_attempt >= 2:
                    raise YouTubeUnavailable("two upload sessions expired in one attempt")
                if still_ours is not None and not await still_ours():
                    raise LeaseLost("the upload's claim was taken over; not opening a session")
                uri = await self._open_session(row_id, part, meta)
                sessions_this_attempt += 1
                status = SessionStatus(0)
            assert status is not None  # noqa: S101 - set with uri
            try:
                return await self._send(row_id, part, uri, status.offset, sent_before)
            except _Expired as exc:
                sent_before = exc.sent
                self._log.info("upload_session_expired", part=part.part)
                await self._store.upload_session_clear(row_id, part.part)
                uri, status = None, None

    async def _check_file(self, path: Path, part: UploadPart) -> None:
        try:
            actual = await asyncio.to_thread(fingerprint, path)
        except FileNotFoundError:
            raise FileChanged(f"{path} is missing") from None
        if actual != part.fingerprint:
            raise FileChanged(f"{path} changed since its upload was planned")

    async def _open_session(self, row_id: int, part: UploadPart, meta: VideoMetadata) -> str:
        await self.pay("videos.insert")
        resource = meta.resource(category_id=self._policy.category_id,
                                 privacy=self._policy.privacy)  # fmt: skip
        try:
            uri = await self._client.create_session(resource, part.file_size)
        except QuotaExhausted:
            await self.exhausted("videos.insert")
            raise
        # Committed before the first byte goes out: after a crash, this is how we resume.
        await self._store.upload_session_set(row_id, part.part, uri, meta.title)
        self._log.info("upload_session_opened", part=part.part, size=part.file_size)
        return uri

    async def _query(self, uri: str, total: int) -> SessionStatus:
        """A status query, retried with backoff while YouTube is unavailable."""
        failures = 0
        while True:
            try:
                return await self._client.query(uri, total)
            except YouTubeUnavailable:
                failures += 1
                if failures > self._policy.chunk_retries:
                    raise
                await self._pause(failures)

    async def _pause(self, failures: int) -> None:
        delay = backoff_s(failures, base_s=self._policy.retry_base_s,
                          cap_s=self._policy.retry_cap_s, draw=random.random())  # noqa: S311 # fmt: skip
        await self._sleep(max(delay, self._policy.retry_base_s / 4))

    async def _send(
        self, row_id: int, part: UploadPart, uri: str, offset: int, sent_before: int
    ) -> Published:
        size = part.file_size
        path = Path(part.file_path)
        sent = sent_before
        unsaved = 0
        failures = 0
        saved_at = time.monotonic()
        while True:
            end = min(offset + self._policy.chunk_size, size)
            try:
                status = await self._client.put_chunk(uri, path, offset, end, size)
                sent += end - offset
                unsaved += end - offset
                self._metrics.upload_bytes.inc(end - offset)
            except UploadSessionExpired as exc:
                raise _Expired(sent) from exc
            except YouTubeUnavailable as exc:
                failures += 1
                self._metrics.upload_chunk_retries.inc()
                self._log.warning("upload_chunk_failed", part=part.part, offset=offset,
                                  reason=str(exc), failures=failures)  # fmt: skip
                if failures > self._policy.chunk_retries:
                    raise
                await self._pause(failures)
                try:
                    status = await self._query(uri, size)
                except UploadSessionExpired as expired:
                    raise _Expired(sent) from expired
            if status.video is not None:
                await self._store.upload_progress(row_id, part.part, size, unsaved)
                return await self._done(row_id, part, status, adopted=False, sent=sent)
            if status.offset < offset:
                self._log.info("upload_rewound", part=part.part, sent_to=end, held=status.offset)
            elif status.offset > offset:
                failures = 0
            offset = status.offset
            now = time.monotonic()
            if now - saved_at >= _PROGRESS_EVERY_S:
                await self._store.upload_progress(row_id, part.part, offset, unsaved)
                saved_at, unsaved = now, 0

    async def _done(
        self, row_id: int, part: UploadPart, status: SessionStatus, *, adopted: bool, sent: int
    ) -> Published:
        video = status.video or {}
        video_id = str(video["id"])
        upload_status = (video.get("status") or {}).get("uploadStatus")
        await self._store.upload_video_set(row_id, part.part, video_id, upload_status,
                                           adopted=adopted)  # fmt: skip
        self._log.info("upload_part_done", part=part.part, parts=part.parts, video_id=video_id,
                       adopted=adopted, sent_bytes=sent, size=part.file_size)  # fmt: skip
        return Published(video_id, upload_status, adopted, sent)

    async def _find(self, marker: str) -> str | None:
        """A video in the channel's uploads whose description carries `marker`."""
        if self._uploads_playlist is None:
            await self.pay("channels.list")
            self._uploads_playlist = await self._client.uploads_playlist()
        token: str | None = None
        for _ in range(self._policy.marker_pages):
            await self.pay("playlistItems.list")
            items, token = await self._client.uploads_page(self._uploads_playlist, token)
            for video_id, description in items:
                if marker in description:
                    return video_id
            if token is None:
                break
        return None

    async def verify(self, row_id: int, part: UploadPart, video_id: str) -> None:
        """`videos.list` after the upload: a rejected or failed video raises VideoRejected."""
        try:
            await self.pay("videos.list")
        except QuotaExhausted:
            self._log.info("upload_status_unchecked", part=part.part, why="no quota left")
            return
        try:
            statuses = await self._client.video_statuses([video_id])
        except QuotaExhausted:
            await self.exhausted("videos.list")
            return
        status = statuses.get(video_id)
        if status is None:
            return  # not listed yet: YouTube lists a new video after a moment
        upload_status = str(status.get("uploadStatus") or "")
        reason = status.get("rejectionReason") or status.get("failureReason")
        await self._store.upload_status_set(row_id, part.part, upload_status,
                                            str(reason) if reason else None)  # fmt: skip
        if upload_status in ("rejected", "failed"):
            raise VideoRejected(
                f"YouTube {upload_status} part {part.part}/{part.parts} "
                f"(video {video_id}): {reason or 'no reason given'}"
            )


class _Expired(Exception):
    def __init__(self, sent: int) -> None:
        self.sent = sent
