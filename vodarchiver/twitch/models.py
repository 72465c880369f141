"""Helix records and their parsing. Pure: no I/O.

Helix answers are untrusted input: every field is checked for presence and type, and an item
that fails is reported by `ParseError` (HelixDataError, with the reason) rather than stored
half-right. Parsing one video never depends on another, so a bad item costs only itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vodarchiver.errors import HelixDataError as ParseError


@dataclass(frozen=True)
class MutedSegment:
    """A muted range of a VOD, in seconds from its start."""

    offset_s: int
    duration_s: int


@dataclass(frozen=True)
class HelixUser:
    """A channel as /helix/users describes it."""

    id: str
    login: str
    display_name: str
    broadcaster_type: str  # "partner", "affiliate" or ""


@dataclass(frozen=True)
class HelixVideo:
    """One archive (past broadcast) from /helix/videos."""

    id: str
    stream_id: str | None
    user_id: str
    user_login: str
    title: str
    description: str
    created_at: datetime
    published_at: datetime | None
    url: str
    thumbnail_url: str
    viewable: str
    duration_s: int
    muted_segments: tuple[MutedSegment, ...]
    type: str = "archive"  # archive, highlight or upload


@dataclass(frozen=True)
class HelixStream:
    """A live stream from /helix/streams."""

    id: str
    user_id: str
    user_login: str
    started_at: datetime | None


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_twitch_duration(text: str) -> int:
    """Helix's `3h8m33s` (any part may be absent: `45s`, `12m`) in seconds."""
    match = _DURATION.match(text)
    if match is None or not text:
        raise ParseError(f"duration {text!r} is not like 3h8m33s")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total > MAX_DURATION_S:
        raise ParseError(f"duration {text[:40]!r} is longer than any broadcast")
    return total


# Twitch caps a broadcast at 48 hours; anything far beyond is garbage, not a VOD.
MAX_DURATION_S = 7 * 86400
_EARLIEST, _LATEST = datetime(2005, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _str(item: Mapping[str, Any], key: str, *, empty_ok: bool = True) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise ParseError(f"{key!r} should be a string, got {type(value).__name__}")
    value = value.replace("\x00", "")  # PostgreSQL text cannot hold NUL; nothing meant it
    if not empty_ok and not value:
        raise ParseError(f"{key!r} is empty")
    return value


def _optional_str(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParseError(f"{key!r} should be a string, got {type(value).__name__}")
    return value


def parse_time(text: str, key: str = "time") -> datetime:
    """An RFC 3339 timestamp as Helix writes it (`2018-11-14T21:30:18Z`), timezone-aware."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParseError(f"{key!r} is not a timestamp: {text[:40]!r}") from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not _EARLIEST <= value < _LATEST:
        raise ParseError(f"{key!r} is out of range: {text[:40]!r}")
    return value


def _muted(raw: object) -> tuple[MutedSegment, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ParseError("'muted_segments' should be a list or null")
    segments = []
    for seg in raw:
        if not isinstance(seg, dict):
            raise ParseError("a muted segment should be an object")
        offset, duration = seg.get("offset"), seg.get("duration")
        if not isinstance(offset, int) or not isinstance(duration, int):
            raise ParseError("a muted segment needs integer 'offset' and 'duration'")
        segments.append(MutedSegment(offset, duration))
    return tuple(segments)


def parse_video(item: object) -> HelixVideo:
    """One element of /helix/videos `data`, or ParseError saying what is wrong."""
    if not isinstance(item, dict):
        raise ParseError("a video should be an object")
    video_id = _str(item, "id", empty_ok=False)
    if not video_id.isdigit():
        raise ParseError(f"video id {video_id[:40]!r} is not numeric")
    published = _optional_str(item, "published_at")
    return HelixVideo(
        id=video_id,
        stream_id=_optional_str(item, "stream_id"),
        user_id=_str(item, "user_id", empty_ok=False),
        user_login=_str(item, "user_login", empty_ok=False).lower(),
        title=_str(item, "title"),
        description=_str(item, "description"),
        created_at=parse_time(_str(item, "created_at", empty_ok=False), "created_at"),
        published_at=parse_time(published, "published_at") if published else None,
        url=_str(item, "url", empty_ok=False),
        thumbnail_url=_str(item, "thumbnail_url"),
        viewable=_str(item, "viewable"),
        duration_s=parse_twitch_duration(_str(item, "duration", empty_ok=False)),
        muted_segments=_muted(item.get("muted_segments")),
        type=_str(item, "type") if "type" in item else "archive",
    )


def parse_user(item: object) -> HelixUser:
    """One element of /helix/users `data`."""
    if not isinstance(item, dict):
        raise ParseError("a user should be an object")
    return HelixUser(
        id=_str(item, "id", empty_ok=False),
        login=_str(item, "login", empty_ok=False).lower(),
        display_name=_str(item, "display_name"),
        broadcaster_type=_str(item, "broadcaster_type"),
    )


def parse_stream(item: object) -> HelixStream:
    """One element of /helix/streams `data`."""
    if not isinstance(item, dict):
        raise ParseError("a stream should be an object")
    started = _optional_str(item, "started_at")
    return HelixStream(
        id=_str(item, "id", empty_ok=False),
        user_id=_str(item, "user_id", empty_ok=False),
        user_login=_str(item, "user_login").lower(),
        started_at=parse_time(started, "started_at") if started else None,
    )


def data_items(body: object) -> list[object]:
    """The `data` list of a Helix answer, or ParseError."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ParseError("the answer has no 'data' list")
    items: list[object] = body["data"]
    return items


def next_cursor(body: object) -> str | None:
    """`pagination.cursor` of a Helix answer; None on the last page."""
    if not isinstance(body, dict):
        return None
    pagination = body.get("pagination")
    if not isinstance(pagination, dict):
        return None
    cursor = pagination.get("cursor")
    return cursor if isinstance(cursor, str) and cursor else None
