"""Pure decisions of the extras stage: what it may spend, where a thumbnail comes from, outcomes.

Extras (a part's thumbnail, its chat as captions) never spend the units the next video upload
needs: an extra is charged against the bucket's budget minus one `videos.insert` when the upload
is paid from the same bucket, and waits for the next Pacific midnight when that is not enough.
YouTube's refusals are told apart: a channel that may not set custom thumbnails (403
`forbidden`) or a token without the captions scope (403 `insufficientPermissions`) refuse that
kind for every part, once; quota and transient errors put the extra back for later; a request
YouTube refuses as such (a bad image) is recorded and not repeated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vodarchiver.errors import (
    QuotaExhausted,
    TransientError,
    UploadsPaused,
    YouTubeRequestError,
)
from vodarchiver.pipeline.backoff import retry_delay_s
from vodarchiver.pipeline.quota import Charge, QuotaPlan, next_reset

THUMBNAIL_SIZE = (1280, 720)
_PLACEHOLDER = re.compile(r"%\{width\}x%\{height\}|\{width\}x\{height\}")
RETRY_BASE_S = 60.0
RETRY_CAP_S = 6 * 3600.0
WHOLE_CHANNEL_REASONS = {"thumbnail": "forbidden", "captions": "insufficientPermissions"}


def extra_charge(plan: QuotaPlan, call: str, now: datetime) -> tuple[Charge, int]:
    """The extra's price, and the budget it may use: one video insert stays reserved."""
    charge = plan.charge(call, now)
    insert = plan.charge("videos.insert", now)
    reserve = insert.units if insert.bucket == charge.bucket else 0
    return charge, max(0, charge.budget - reserve)


def thumbnail_url(template: str | None) -> str | None:
    """Helix's `thumbnail_url` at 1280x720; None when Twitch has none (empty, or its 404 image)."""
    if not template or "404" in template.rsplit("/", 1)[-1] or "/_404/" in template:
        return None
    width, height = THUMBNAIL_SIZE
    return _PLACEHOLDER.sub(f"{width}x{height}", template)


def image_type(data: bytes) -> str | None:
    """`image/jpeg` or `image/png` from the bytes themselves; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def frame_argv(ffmpeg: str, source: Path, at_s: float, target: Path) -> list[str]:
    """One frame of the part at `at_s`, 1280 wide, as a JPEG YouTube accepts (under 2 MB)."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-ss", f"{max(0.0, at_s):.3f}", "-i", str(source), "-frames:v", "1",
        "-vf", "scale=1280:-2", "-q:v", "4", "-f", "image2", str(target),
    ]  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """What to record after an extra's call: a state, why, and when to look again."""

    state: str  # done | pending | refused | skipped
    detail: str | None
    retry_s: float = 0.0
    whole_channel: bool = False  # refuse this kind for every part, not only this one
    quota: bool = False  # YouTube says the bucket is spent: record it as exhausted


def on_error(kind: str, exc: Exception, *, attempts: int, now: datetime) -> Outcome:
    """The outcome of an extra whose call raised `exc`."""
    if isinstance(exc, QuotaExhausted):
        return Outcome("pending", str(exc)[:300], _until(next_reset(now), now), quota=True)
    if isinstance(exc, YouTubeRequestError):
        if exc.reason == WHOLE_CHANNEL_REASONS.get(kind):
            return Outcome("refused", str(exc)[:300], whole_channel=True)
        if exc.status == 404:  # the video is gone from YouTube: nothing to add to
            return Outcome("skipped", str(exc)[:300])
        return Outcome("refused", str(exc)[:300])
    if isinstance(exc, TransientError | UploadsPaused):
        wait = retry_delay_s(max(1, attempts), base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S)
        return Outcome("pending", str(exc)[:300], wait)
    raise exc


def _until(moment: datetime, now: datetime) -> float:
    return max(1.0, (moment - now).total_seconds())


def wait_for_quota(now: datetime) -> float:
    """Seconds until the quota returns (the next Pacific midnight)."""
    return _until(next_reset(now), now)
