"""Parsing Helix answers: the documented shapes pass, everything else is a clear HelixDataError."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vodarchiver.errors import HelixDataError
from vodarchiver.twitch.models import (
    MutedSegment,
    data_items,
    next_cursor,
    parse_stream,
    parse_twitch_duration,
    parse_user,
    parse_video,
)

VIDEO: dict[str, Any] = {
    "id": "335921245", "stream_id": "40078987165", "user_id": "141981764", "user_login": "TwitchDev",
    "user_name": "TwitchDev", "title": "Twitch Developers 101", "description": "Welcome",
    "created_at": "2018-11-14T21:30:18Z", "published_at": "2018-11-14T22:04:30Z",
    "url": "https://www.twitch.tv/videos/335921245",
    "thumbnail_url": "https://static-cdn.jtvnw.net/cf_vods/x/%{width}x%{height}.jpg",
    "viewable": "public", "view_count": 1863062, "language": "en", "type": "archive",
    "duration": "3h8m33s", "muted_segments": [{"duration": 30, "offset": 120}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3h8m33s", 11313), ("45s", 45), ("12m", 720), ("1h", 3600), ("2h0m0s", 7200), ("0s", 0)],
)
def test_twitch_durations(text: str, seconds: int) -> None:
    """Helix durations with any part absent become seconds."""
    assert parse_twitch_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "3:08:33", "8m3h", "PT3H", "-5s", "5 s"])
def test_bad_twitch_durations(text: str) -> None:
    """Anything else is refused."""
    with pytest.raises(HelixDataError, match="duration"):
        parse_twitch_duration(text)


def test_documented_video_parses() -> None:
    """The example from the Helix reference becomes a typed record."""
    video = parse_video(VIDEO)
    assert video.id == "335921245"
    assert video.user_login == "twitchdev"
    assert video.created_at == datetime(2018, 11, 14, 21, 30, 18, tzinfo=UTC)
    assert video.duration_s == 11313
    assert video.muted_segments == (MutedSegment(offset_s=120, duration_s=30),)


def test_null_muted_segments_and_empty_stream_id() -> None:
    """muted_segments null means none; an empty stream_id means none."""
    video = parse_video({**VIDEO, "muted_segments": None, "stream_id": ""})
    assert video.muted_segments == ()
    assert video.stream_id is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"duration": 42}, "'duration' should be a string"),
        ({"id": None}, "'id' should be a string"),
        ({"id": "abc"}, "not numeric"),
        ({"created_at": "yesterday"}, "not a timestamp"),
        ({"muted_segments": [{"offset": "x"}]}, "muted segment"),
        ({"title": ["a"]}, "'title' should be a string"),
    ],
)
def test_mistyped_fields_are_named(change: dict[str, Any], reason: str) -> None:
    """A wrong type names the field instead of storing garbage."""
    with pytest.raises(HelixDataError, match=reason):
        parse_video({**VIDEO, **change})


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"duration": "9999999h"}, "longer than any broadcast"), ({"created_at": "9999-12-31T00:00:00Z"}, "out of range"),
     ({"created_at": "1970-01-01T00:00:00Z"}, "out of range")],
)  # fmt: skip
def test_absurd_values_are_refused(change: dict[str, Any], reason: str) -> None:
    """Values no real VOD has (a 1,000-year duration, year 9999) are refused before they reach the database."""
    with pytest.raises(HelixDataError, match=reason):
        parse_video({**VIDEO, **change})


def test_nul_characters_are_dropped() -> None:
    """A NUL inside a title (which PostgreSQL text cannot hold) is removed, not stored or fatal."""
    assert parse_video({**VIDEO, "title": "a\u0000b"}).title == "ab"


def test_missing_field_is_named() -> None:
    """A missing required field is refused."""
    broken = dict(VIDEO)
    del broken["created_at"]
    with pytest.raises(HelixDataError, match="created_at"):
        parse_video(broken)


def test_users_streams_and_envelopes() -> None:
    """Users and streams parse; data and pagination are read defensively."""
    user = parse_user(
        {"id": "1", "login": "Alice", "display_name": "Alice", "broadcaster_type": "partner"}
    )
    assert (user.login, user.broadcaster_type) == ("alice", "partner")
    stream = parse_stream(
        {"id": "9", "user_id": "1", "user_login": "alice", "started_at": "2021-03-10T15:04:21Z"}
    )
    assert stream.id == "9"
    assert next_cursor({"data": [], "pagination": {"cursor": "abc"}}) == "abc"
    assert next_cursor({"data": [], "pagination": {}}) is None
    assert next_cursor({"data": []}) is None
    with pytest.raises(HelixDataError, match="data"):
        data_items({"error": "nope"})
    with pytest.raises(HelixDataError, match="data"):
        data_items([1, 2])
