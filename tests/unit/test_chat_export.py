"""Chat export formats: times, visible lines, JSON with parsed badges and emotes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from vodarchiver.chat_export import (
    ASS_HEADER,
    ass_time,
    line_text,
    message_json,
    srt_time,
    to_ass,
    to_ndjson,
    to_srt,
)


def row(msg_id: str, offset_ms: int, **extra: Any) -> dict[str, Any]:
    """A chat row as ChatStore.page returns it."""
    base: dict[str, Any] = {"msg_id": msg_id, "kind": "PRIVMSG", "offset_ms": offset_ms,
                            "sent_at": datetime(2026, 1, 1, tzinfo=UTC), "user_id": "1",
                            "username": "bob", "display_name": "Bob", "message": "Kappa hi",
                            "deleted": False, "color": None, "is_action": False, "bits": None,
                            "reply_parent_msg_id": None,
                            "tags": {"badges": "subscriber/6", "emotes": "25:0-4"}}  # fmt: skip
    return base | extra


def test_subtitle_times() -> None:
    """SRT and ASS time stamps, negative offsets shown at zero."""
    assert srt_time(3_723_456) == "01:02:03,456"
    assert srt_time(-5) == "00:00:00,000"
    assert ass_time(3_723_456) == "1:02:03.45"


def test_srt_shows_visible_messages_timed_to_the_vod() -> None:
    """Deleted messages and moderation rows are left out; each cue lasts five seconds."""
    rows = [row("a", 1_000), row("b", 2_000, deleted=True), row("c", 3_000, kind="CLEARCHAT"),
            row("d", 4_000, is_action=True, message="waves")]  # fmt: skip
    assert "".join(to_srt(rows)) == (
        "1\n00:00:01,000 --> 00:00:06,000\nBob: Kappa hi\n\n"
        "2\n00:00:04,000 --> 00:00:09,000\n* Bob waves\n\n"
    )


def test_ass_escapes_override_codes() -> None:
    """Braces and backslashes in chat cannot inject ASS styling."""
    (line,) = to_ass([row("a", 61_000, message="{\\b1}bold\\N")])
    assert line == "Dialogue: 0,0:01:01.00,0:01:06.00,Chat,,0,0,0,,Bob: (\\\\b1)bold\\\\N\n"
    assert "[Events]" in ASS_HEADER


def test_json_keeps_deleted_messages_and_parses_tags() -> None:
    """NDJSON has one object per row with badges and emote ranges; USERNOTICE text has the system message."""
    (line,) = to_ndjson([row("a", 10, deleted=True)])
    doc = json.loads(line)
    assert doc["deleted"] is True
    assert doc["badges"] == [{"name": "subscriber", "version": "6"}]
    assert doc["emotes"] == [{"id": "25", "start": 0, "end": 4}]
    notice = row("n", 0, kind="USERNOTICE", message="yay", tags={"system-msg": "Bob subscribed"})
    assert line_text(notice) == "Bob subscribed yay"
    assert message_json(notice)["system_msg"] == "Bob subscribed"


def test_raw_tags_are_parsed_and_win_over_the_older_tags_object() -> None:
    """Rows since migration 0006 carry the IRCv3 tag text; it is unescaped and read the same."""
    raw = r"badges=moderator/1;emotes=25:0-4;system-msg=Bob\ssubscribed"
    notice = row("n", 0, kind="USERNOTICE", message="yay", tags={}, raw_tags=raw)
    doc = message_json(notice)
    assert doc["badges"] == [{"name": "moderator", "version": "1"}]
    assert doc["emotes"] == []  # "yay" has no code point 4
    assert doc["system_msg"] == "Bob subscribed"
    assert line_text(notice) == "Bob subscribed yay"
