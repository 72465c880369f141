"""A VOD's chat as JSON, NDJSON, SRT or ASS. Pure: rows in, text out.

Rows are `ChatStore.page` rows (offset order). JSON and NDJSON keep everything, deleted messages
included (marked `deleted`), with badges and emotes parsed from the raw tags (`raw_tags`, the
IRCv3 text as received; rows stored before migration 0006 have a `tags` object instead). The
subtitle formats show what a viewer saw: messages and USERNOTICEs, not deleted ones, each timed
to its offset into the VOD and shown for `SHOW_MS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from vodarchiver.twitch.irc import parse_badges, parse_emotes, parse_tags

FORMATS = ("json", "ndjson", "srt", "ass")
SHOW_MS = 5_000
_VISIBLE = frozenset({"PRIVMSG", "USERNOTICE"})


def row_tags(row: Mapping[str, Any]) -> dict[str, str]:
    """A stored row's tags: its `raw_tags` parsed, or the `tags` object of an older row."""
    raw = row.get("raw_tags")
    if raw is not None:
        return parse_tags(str(raw))
    return dict(row.get("tags") or {})


def message_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """One stored chat row as the API and the JSON export show it."""
    tags = row_tags(row)
    text = str(row.get("message") or "")
    return {
        "id": row["msg_id"],
        "kind": row["kind"],
        "offset_ms": row["offset_ms"],
        "sent_at": row["sent_at"].isoformat() if isinstance(row["sent_at"], datetime) else None,
        "user_id": row.get("user_id"),
        "login": row.get("username"),
        "display_name": row.get("display_name"),
        "text": text,
        "action": bool(row.get("is_action")),
        "deleted": bool(row.get("deleted")),
        "color": row.get("color"),
        "bits": row.get("bits"),
        "reply_parent_id": row.get("reply_parent_msg_id"),
        "badges": [{"name": n, "version": v} for n, v in parse_badges(tags.get("badges", ""))],
        "emotes": [
            {"id": e.id, "start": e.start, "end": e.end}
            for e in parse_emotes(tags.get("emotes", ""), text)
        ],
        "system_msg": tags.get("system-msg"),
    }


def srt_time(ms: int) -> str:
    """`HH:MM:SS,mmm`; a negative offset (sent just before the VOD began) shows at zero."""
    ms = max(0, ms)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def ass_time(ms: int) -> str:
    """`H:MM:SS.cc` (centiseconds)."""
    ms = max(0, ms)
    return f"{ms // 3_600_000}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000 // 10:02d}"


def line_text(row: Mapping[str, Any]) -> str:
    """`Name: text` (`* Name text` for /me; the system message for a USERNOTICE), one line."""
    name = row.get("display_name") or row.get("username") or "?"
    text = str(row.get("message") or "")
    if row["kind"] == "USERNOTICE":
        system = row_tags(row).get("system-msg", "")
        text = f"{system} {text}".strip()
        return " ".join(text.split())
    line = f"* {name} {text}" if row.get("is_action") else f"{name}: {text}"
    return " ".join(line.split())


def _visible(rows: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    return (
        r
        for r in rows
        if r["kind"] in _VISIBLE and not r.get("deleted") and r["offset_ms"] is not None
    )


def to_ndjson(rows: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    """One JSON object per line."""
    for row in rows:
        yield json.dumps(message_json(row), ensure_ascii=False) + "\n"


def to_srt(rows: Iterable[Mapping[str, Any]], *, first_index: int = 1) -> Iterable[str]:
    """SRT cues, numbered from `first_index`."""
    for index, row in enumerate(_visible(rows), start=first_index):
        start = int(row["offset_ms"])
        yield f"{index}\n{srt_time(start)} --> {srt_time(start + SHOW_MS)}\n{line_text(row)}\n\n"


ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 1280\nPlayResY: 720\n\n"
    "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, OutlineColour, BorderStyle, "
    "Outline, Shadow, Alignment, MarginL, MarginR, MarginV\n"
    "Style: Chat,Arial,24,&H00FFFFFF,&H00000000,1,2,0,7,20,20,20\n\n"
    "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


def _ass_escape(text: str) -> str:
    # ASS reads `{...}` as override codes and `\N` as a line break: neutralise both.
    return text.replace("\\", "\\\\").replace("{", "(").replace("}", ")")


def to_ass(rows: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    """ASS dialogue lines (the header comes from ASS_HEADER)."""
    for row in _visible(rows):
        start = int(row["offset_ms"])
        yield (f"Dialogue: 0,{ass_time(start)},{ass_time(start + SHOW_MS)},Chat,,0,0,0,,"
               f"{_ass_escape(line_text(row))}\n")  # fmt: skip
