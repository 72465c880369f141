"""The console's pure shaping: offsets, cursors, actions, transfers, patterns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vodarchiver.console import views
from vodarchiver.db.console_store import Cursor, like_pattern

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_offsets_parse_as_hms_ms_or_seconds() -> None:
    """`h:mm:ss`, `m:ss` and plain seconds become milliseconds; h:mm:ss prints them back."""
    assert views.parse_offset("1:02:03") == 3_723_000
    assert views.parse_offset("2:03") == 123_000
    assert views.parse_offset("90.5") == 90_500
    assert views.hms(3_723_000) == "1:02:03"


@pytest.mark.parametrize("raw", ["", "a", "1::2", "-5", "1:2:3:4"])
def test_bad_offsets_are_refused(raw: str) -> None:
    """Anything but a time into the VOD is a ValueError (the page answers 400 naming `t`)."""
    with pytest.raises(ValueError, match=r".*"):
        views.parse_offset(raw)


def test_cursor_round_trips_and_rejects_junk() -> None:
    """A keyset cursor decodes to what was encoded; a non-time key or a missing id is refused."""
    cursor = Cursor("2026-12-05 09:00:00.5+00", 42)
    assert Cursor.decode(cursor.encode()) == cursor
    assert Cursor.decode("infinity|7") == Cursor("infinity", 7)
    for junk in ("nonsense|1", "2026-12-05", "2026-12-05|x"):
        with pytest.raises(ValueError, match=r".*"):
            Cursor.decode(junk)


def test_like_pattern_takes_wildcards_literally() -> None:
    """A search for `50%_off` matches that text, not any text with 50 in it."""
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


def test_actions_follow_the_api_list_and_mark_destructive_ones() -> None:
    """Buttons come from the VOD's `actions` in a fixed order; cancel, skip and reprocess ask first."""
    got = views.vod_actions({"actions": ["priority", "skip", "retry"]})
    assert [a["name"] for a in got] == ["retry", "skip", "priority"]
    assert [a["confirm"] for a in got] == [False, True, False]
    assert views.vod_actions({"actions": []}) == []
    assert views.vod_actions({}) == []
    # Gone: Restore is offered although the lifecycle allows it only once Helix has said yes.
    gone = views.vod_actions({"state": "gone", "actions": ["priority"]})
    assert [a["name"] for a in gone] == ["restore", "priority"]


def test_timeline_lists_audit_rows_oldest_first() -> None:
    """The audit table is read newest first; the timeline shows it oldest first, times in ISO 8601."""
    rows = [
        {"at": NOW, "action": "restore", "from_state": "canceled", "to_state": "queued",
         "actor": "session", "detail": {}},
        {"at": NOW - timedelta(minutes=5), "action": "cancel", "from_state": "downloading",
         "to_state": "canceled", "actor": "loopback", "detail": None},
    ]  # fmt: skip
    got = views.timeline_json(rows)
    assert [e["action"] for e in got] == ["cancel", "restore"]
    assert got[0]["at"] == "2026-12-05T11:55:00+00:00"
    assert got[0]["detail"] == {}


def test_upload_speed_and_eta_come_from_confirmed_bytes() -> None:
    """An upload 100 s in with 50 of 200 MB confirmed shows 25%, 500 kB/s and 300 s left."""
    row = {"twitch_vod_id": "1", "channel": "a", "title": "t", "state": "uploading",
           "upload_bytes_done": 50_000_000, "upload_bytes_total": 200_000_000,
           "upload_started_at": NOW - timedelta(seconds=100)}  # fmt: skip
    got = views.transfer_json(row, NOW)
    assert (got["kind"], got["percent"], got["speed_bps"], got["eta_s"]) == (
        "upload",
        25.0,
        500_000,
        300,
    )


def test_download_figures_are_the_stored_progress() -> None:
    """A download shows yt-dlp's stored bytes, percent, speed and ETA as they are."""
    progress = {"bytes_done": 10, "bytes_total": 40, "percent": 25.0, "speed_bps": 5, "eta_s": 6}
    row = {"twitch_vod_id": "1", "channel": "a", "title": "t", "state": "downloading",
           "download_progress": progress, "download_progress_at": NOW}  # fmt: skip
    got = views.transfer_json(row, NOW)
    assert {k: got[k] for k in progress} == progress


def test_at_risk_counts_seconds_left() -> None:
    """An at-risk VOD carries its expiry and the seconds until then."""
    rows = [{"twitch_vod_id": "1", "channel": "a", "title": "t", "state": "queued",
             "expires_at": NOW + timedelta(hours=2)}]  # fmt: skip
    assert views.at_risk_json(rows, NOW)[0]["seconds_left"] == 7200


def test_emote_names_are_the_words_they_replace() -> None:
    """Emote ranges become their words, each once, in order."""
    emotes = [{"id": "2", "start": 6, "end": 9}, {"id": "1", "start": 0, "end": 4},
              {"id": "1", "start": 11, "end": 15}]  # fmt: skip
    assert views.emote_names("Kappa PogU Kappa", emotes) == ["Kappa", "PogU"]


def test_thumbnail_template_is_filled_and_odd_urls_dropped() -> None:
    """Twitch's %{width}x%{height} template becomes 320x180; a non-http URL shows no image."""
    assert views.thumbnail("https://x/t-%{width}x%{height}.jpg") == "https://x/t-320x180.jpg"
    assert views.thumbnail("javascript:alert(1)") is None
    assert views.thumbnail(None) is None
