"""Discovery's decisions: how long Twitch keeps a VOD, whether an archive is still live. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

# Twitch deletes past broadcasts after this many days, by broadcaster type (sources disagree on
# some cases, so TWITCH_RETENTION_DAYS overrides it per channel).
RETENTION_DAYS = {"partner": 60, "affiliate": 14}
DEFAULT_RETENTION_DAYS = 7


def retention_days(login: str, broadcaster_type: str, overrides: Mapping[str, int]) -> int:
    """The channel's retention window: its override, else by broadcaster type, else 7 days."""
    if login in overrides:
        return overrides[login]
    return RETENTION_DAYS.get(broadcaster_type, DEFAULT_RETENTION_DAYS)


def expires_at(created_at: datetime, days: int) -> datetime:
    """When Twitch is expected to delete a VOD created at `created_at`."""
    return created_at + timedelta(days=days)


def still_live(
    stream_id: str | None,
    live_stream_ids: frozenset[str] | None,
    duration_s: int,
    previous_duration_s: int | None,
) -> bool | None:
    """Whether an archive belongs to a stream that has not ended; None when that is unknown.

    Live when its stream is the channel's current live stream, or when its duration grew since the
    last look (Helix can lag behind on /streams). Unknown when /streams could not be read this time,
    unless the duration alone shows it is still growing.
    """
    if previous_duration_s is not None and duration_s > previous_duration_s:
        return True
    if live_stream_ids is None:
        return None
    return stream_id is not None and stream_id in live_stream_ids


def estimated_bytes(duration_s: int | None, mbps: float) -> int:
    """A VOD's likely size from its duration and an assumed bitrate (Helix gives no size)."""
    return int((duration_s or 0) * mbps * 1_000_000 / 8)


def room_to_download(
    *, free_bytes: int, estimate_bytes: int, partial_bytes: int, min_free_bytes: int
) -> bool:
    """Whether a download fits without eating into the reserve.

    The MPEG-TS download and its mp4 remux exist side by side until the remux is verified, so
    a VOD needs about twice its size; what earlier attempts already fetched is not needed again.
    """
    need = max(0, 2 * estimate_bytes - partial_bytes)
    return free_bytes - need >= min_free_bytes


def disk_wait_over(*, waiting_since: datetime, now: datetime, release_after_s: float) -> bool:
    """Whether a download waiting for disk has held its partial files long enough.

    Kept, they make the resume cheap; but on a disk that stays full they hold it at 100 %, so
    after DISK_FULL_RELEASE_AFTER without progress they go and the VOD starts again from
    scratch once space returns.
    """
    return (now - waiting_since).total_seconds() >= release_after_s
