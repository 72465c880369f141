"""The extras stage: each published part's thumbnail and (optionally) chat captions, in quota.

Runs over published parts, apart from the upload stage, so an extra never delays or fails a
video. A worker claims one extra at a time (`FOR UPDATE SKIP LOCKED` and a lease), checks what
is recorded (and, for captions, what YouTube already holds: `captions.list`), pays for the call
from the quota planner with one video insert kept in reserve, makes it, and records the outcome
(pure decisions in `extras_rules.py`). Thumbnails are Twitch's (Helix `thumbnail_url` at
1280x720), or a frame of the part while its file still exists. Captions are the part's chat as
SubRip, rebased to the part's start, named by `YOUTUBE_CAPTIONS_NAME`.

A SIGKILL between YouTube's answer and our record is the one window where a call repeats:
captions are looked up first, so a track is never inserted twice; a thumbnail may be set a
second time (the same image, 50 units).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vodarchiver import process
from vodarchiver.archive_metrics import ArchiveMetrics
from vodarchiver.chat_export import to_srt
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.extras_store import ExtraJob, ExtrasStore
from vodarchiver.db.uploads import UploadStore
from vodarchiver.errors import VodarchiverError
from vodarchiver.logs import bound_contextvars, get_logger
from vodarchiver.pipeline.extras_rules import (
    Outcome,
    extra_charge,
    frame_argv,
    image_type,
    on_error,
    thumbnail_url,
    wait_for_quota,
)
from vodarchiver.pipeline.quota import QuotaPlan
from vodarchiver.twitch.thumbnail import ThumbnailFetcher
from vodarchiver.youtube.extras_client import THUMBNAIL_MAX_BYTES, ExtrasClient

REFUSED_KEY = "youtube_extras_refused:{kind}"  # kv: YouTube refuses this kind for the channel
CHAT_PAGE = 5_000
STAGE_RETRY_CAP_S = 60.0


@dataclass(frozen=True)
class ExtrasPolicy:
    """What the stage does: thumbnails, captions (name, language), and its tools."""

    thumbnails: bool = True
    captions: bool = False
    captions_name: str = "Twitch chat"
    captions_language: str = "en"
    ffmpeg: str = "ffmpeg"
    poll_s: float = 30.0
    lease_s: float = 120.0

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of extra this daemon does."""
        return (("thumbnail",) if self.thumbnails else ()) + (
            ("captions",) if self.captions else ())  # fmt: skip


class ExtrasStage:
    """Thumbnails and captions of published parts, one extra at a time."""

    def __init__(
        self,
        client: ExtrasClient,
        store: ExtrasStore,
        uploads: UploadStore,
        quota: QuotaPlan,
        metrics: ArchiveMetrics,
        *,
        chat: ChatStore,
        thumbnails: ThumbnailFetcher,
        owner: str,
        owner_prefix: str,
        policy: ExtrasPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._store = store
        self._uploads = uploads
        self._chat = chat
        self._quota = quota
        self._metrics = metrics
        self._thumbnails = thumbnails
        self._owner = owner
        self._prefix = owner_prefix
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._log = get_logger("extras")

    async def run_forever(self) -> None:
        """Do extras until cancelled; an error backs off, never ends the stage."""
        failures = 0
        while True:
            try:
                worked = await self.run_once()
                failures = 0
            except Exception as exc:  # an optional stage restarts, never dies
                failures += 1
                wait = min(STAGE_RETRY_CAP_S, 2.0**failures)
                self._log.warning("extras_error", error=str(exc)[:300],
                                  error_type=exc.__class__.__name__, retry_in_s=wait)  # fmt: skip
                await self._sleep(wait)
                continue
            if not worked:
                await self._sleep(self._policy.poll_s)

    async def run_once(self) -> bool:
        """Queue the extras of newly published parts, then do the next due one."""
        kinds = self._policy.kinds
        if not kinds:
            return False
        await self._store.enqueue(kinds)
        job = await self._store.claim(self._owner, self._prefix, self._policy.lease_s, kinds)
        if job is None:
            return False
        with bound_contextvars(vod_id=job.vod_id, part=job.part, extra=job.kind):
            try:
                outcome = await (self._thumbnail(job) if job.kind == "thumbnail"
                                 else self._captions(job))  # fmt: skip
            except VodarchiverError as exc:  # anything else: the stage's last-resort backoff
                outcome = on_error(job.kind, exc, attempts=job.attempts, now=self._clock())
            await self._record(job, outcome)
        return True

    async def _record(self, job: ExtraJob, outcome: Outcome) -> None:
        if outcome.quota:
            charge, _ = extra_charge(self._quota, _CALLS[job.kind], self._clock())
            await self._uploads.quota_exhaust(charge.key, charge.budget)
        if outcome.whole_channel:
            await self._uploads.kv_set(REFUSED_KEY.format(kind=job.kind), outcome.detail or "")
            await self._store.refuse_all(job.kind, outcome.detail or "")
            self._log.warning("extras_refused_for_channel", reason=outcome.detail)
        await self._store.finish(job, self._owner, state=outcome.state, detail=outcome.detail,
                                 retry_s=outcome.retry_s)  # fmt: skip
        self._metrics.extras.labels(job.kind, outcome.state).inc()
        self._log.info("extra_" + outcome.state, detail=outcome.detail,
                       retry_in_s=outcome.retry_s or None)  # fmt: skip

    async def _refused(self, kind: str) -> str | None:
        key = REFUSED_KEY.format(kind=kind)
        return (await self._uploads.kv_get_many([key])).get(key)

    async def _afford(self, call: str) -> bool:
        """Pay for `call` if the budget allows it with one video insert still reserved."""
        charge, budget = extra_charge(self._quota, call, self._clock())
        return await self._uploads.quota_charge(charge.key, charge.units, budget) is not None

    def _wait_for_quota(self, call: str) -> Outcome:
        return Outcome("pending", f"waiting for quota for {call} (a video insert stays reserved)",
                       wait_for_quota(self._clock()))  # fmt: skip

    # --- thumbnails ---------------------------------------------------------------------------

    async def _thumbnail(self, job: ExtraJob) -> Outcome:
        refused = await self._refused("thumbnail")
        if refused is not None:
            return Outcome("refused", refused)
        image, source = await self._twitch_thumbnail(job), "twitch"
        if image is None:
            image, source = await self._frame(job), "frame"
        if image is None:
            return Outcome("skipped", "no thumbnail on Twitch and the file is gone")
        kind = image_type(image)
        if kind is None or len(image) > THUMBNAIL_MAX_BYTES:
            return Outcome("skipped", f"the {source} image is not a JPEG/PNG under 2 MB")
        if not await self._afford("thumbnails.set"):
            return self._wait_for_quota("thumbnails.set")
        await self._client.set_thumbnail(job.video_id, image, kind)
        return Outcome("done", f"from {source}")

    async def _twitch_thumbnail(self, job: ExtraJob) -> bytes | None:
        url = thumbnail_url(job.thumbnail_url)
        if url is None:
            return None
        data = await self._thumbnails.fetch(url)
        return data if data is not None and image_type(data) else None

    async def _frame(self, job: ExtraJob) -> bytes | None:
        path = job.file_path
        if path is None or not await asyncio.to_thread(path.exists):
            return None
        with tempfile.TemporaryDirectory(prefix="vodarchiver-thumb-") as tmp:
            target = Path(tmp) / "frame.jpg"
            at = min(60.0, job.duration_s / 10)
            argv = frame_argv(self._policy.ffmpeg, path, at, target)
            done = await process.run(argv, env=process.MINIMAL_ENV, timeout_s=120)
            if done.returncode != 0 or not target.exists():
                return None
            return await asyncio.to_thread(target.read_bytes)

    # --- captions -----------------------------------------------------------------------------

    async def _captions(self, job: ExtraJob) -> Outcome:
        refused = await self._refused("captions")
        if refused is not None:
            return Outcome("refused", refused)
        if not await self._afford("captions.list"):
            return self._wait_for_quota("captions.list")
        name = self._policy.captions_name
        if any(c.name == name for c in await self._client.captions(job.video_id)):
            return Outcome("done", "already on YouTube")
        track = await self._track(job)
        if not track:
            return Outcome("skipped", "no chat in this part")
        if not await self._afford("captions.insert"):
            return self._wait_for_quota("captions.insert")
        await self._client.insert_caption(job.video_id, name=name,
                                          language=self._policy.captions_language,
                                          track=track)  # fmt: skip
        return Outcome("done", f"{track.count(b' --> ')} cues")

    async def _track(self, job: ExtraJob) -> bytes:
        """The part's chat as SubRip, offsets from the part's start."""
        start_ms = round(job.start_s * 1000)
        end_ms = round((job.start_s + job.duration_s) * 1000)
        cues: list[str] = []
        after: tuple[int, str] | None = None
        while True:
            rows = await self._chat.page(job.vod_id, from_ms=start_ms, to_ms=end_ms, after=after,
                                         limit=CHAT_PAGE)  # fmt: skip
            shifted = [{**r, "offset_ms": int(r["offset_ms"]) - start_ms} for r in rows]
            cues += to_srt(shifted, first_index=len(cues) + 1)
            if len(rows) < CHAT_PAGE:
                return "".join(cues).encode()
            after = (int(rows[-1]["offset_ms"]), str(rows[-1]["msg_id"]))


_CALLS = {"thumbnail": "thumbnails.set", "captions": "captions.insert"}
