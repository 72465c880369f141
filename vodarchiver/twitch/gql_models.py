"""Twitch GQL answers (chat replay pages, chapters) read defensively into frozen records. Pure.

GQL is unofficial: every field is checked, and a refusal is told apart from a malformed answer.
A comment becomes the same row a live IRC message does; its tags are written back as IRCv3 text
(`raw_tags`: `badges`, `color`, `display-name`, `emotes`, `id`, `user-id`), so the export reads
replayed and live chat the same way. `createdAt` has been seen in local time labelled `Z` since
2025-04, so a replayed message's time is the VOD's start plus its (whole-second) offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vodarchiver.errors import GqlRefused

COMMENTS_OPERATION = "VideoCommentsByOffsetOrCursor"
COMMENTS_HASH = "b70a3591ff0f4e0313d126c6a1502d79a1c02baebb288227c582044aa76adf6a"
CHAPTERS_OPERATION = "VideoPlayer_ChapterSelectButtonVideo"
CHAPTERS_HASH = "71835d5ef425e154bf282453a926d99b328cdc5e32f36d3a209d0f4778b41203"
_TAG_ESCAPES = str.maketrans({"\\": "\\\\", ";": "\\:", " ": "\\s", "\r": "\\r", "\n": "\\n"})


@dataclass(frozen=True, slots=True)
class ReplayComment:
    """One chat message from the replay."""

    id: str
    offset_s: int
    user_id: str | None
    login: str | None
    display_name: str | None
    text: str
    color: str | None
    raw_tags: str


@dataclass(frozen=True)
class CommentsPage:
    """One page of a VOD's chat replay."""

    comments: tuple[ReplayComment, ...]
    cursor: str | None  # the last edge's: where the next page starts
    has_next: bool


@dataclass(frozen=True)
class VideoChapter:
    """One chapter (a game played) of a VOD."""

    start_ms: int
    duration_ms: int  # 0: runs to the end (a VOD still live)
    title: str
    game_id: str | None


def comments_request(video_id: str, *, offset_s: int | None, cursor: str | None) -> dict[str, Any]:
    """The operation object: by offset or by cursor, never both keys (Twitch refuses both)."""
    variables: dict[str, Any] = {"videoID": video_id}
    if cursor is not None:
        variables["cursor"] = cursor
    else:
        variables["contentOffsetSeconds"] = max(0, offset_s or 0)
    return _operation(COMMENTS_OPERATION, COMMENTS_HASH, variables)


def chapters_request(video_id: str) -> dict[str, Any]:
    """The operation object of the chapter list."""
    variables = {"includePrivate": False, "videoID": video_id}
    return _operation(CHAPTERS_OPERATION, CHAPTERS_HASH, variables)


def _operation(name: str, digest: str, variables: dict[str, Any]) -> dict[str, Any]:
    return {
        "operationName": name,
        "variables": variables,
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
    }


def unwrap(body: object) -> dict[str, Any]:
    """The answer object (an array answer holds one); GqlRefused when it is not one."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        raise GqlRefused("malformed", "GQL answer is not an object")
    return body


def _video(body: dict[str, Any]) -> dict[str, Any]:
    errors = body.get("errors")
    challenge = (body.get("extensions") or {}).get("challenge") if isinstance(
        body.get("extensions"), dict) else None  # fmt: skip
    messages = [str(e.get("message", ""))[:200] for e in errors if isinstance(e, dict)] \
        if isinstance(errors, list) else []  # fmt: skip
    if challenge or any("integrity" in m for m in messages):
        raise GqlRefused("integrity", "Twitch GQL: failed integrity check")
    data = body.get("data")
    if not isinstance(data, dict) or "video" not in data:
        why = "; ".join(messages) or "no data"
        raise GqlRefused("malformed", f"Twitch GQL answered without data: {why}")
    video = data["video"]
    if video is None:
        raise GqlRefused("video_null", "Twitch GQL: the video does not exist (deleted?)")
    if not isinstance(video, dict):
        raise GqlRefused("malformed", "Twitch GQL: video is not an object")
    return video


def parse_comments(body: object) -> CommentsPage:
    """A chat replay answer -> CommentsPage; GqlRefused saying why Twitch would not give it."""
    video = _video(unwrap(body))
    comments = video.get("comments")
    if comments is None:
        raise GqlRefused("comments_null", "Twitch GQL: comments is null")
    if not isinstance(comments, dict) or not isinstance(comments.get("edges"), list):
        raise GqlRefused("malformed", "Twitch GQL: comments without edges")
    parsed: list[ReplayComment] = []
    cursor: str | None = None
    for edge in comments["edges"]:
        if not isinstance(edge, dict):
            continue
        if isinstance(edge.get("cursor"), str) and edge["cursor"]:
            cursor = edge["cursor"]
        comment = _comment(edge.get("node"))
        if comment is not None:
            parsed.append(comment)
    info = comments.get("pageInfo")
    has_next = bool(info.get("hasNextPage")) if isinstance(info, dict) else False
    return CommentsPage(tuple(parsed), cursor, has_next and cursor is not None)


def _comment(node: object) -> ReplayComment | None:
    """One edge's node; None when it lacks an id or an offset (skipped alone)."""
    if not isinstance(node, dict):
        return None
    msg_id, offset = node.get("id"), node.get("contentOffsetSeconds")
    if not isinstance(msg_id, str) or not msg_id or len(msg_id) > 100:
        return None
    if isinstance(offset, float) and offset.is_integer():
        offset = int(offset)
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**31:
        return None
    commenter, message = _obj(node, "commenter"), _obj(node, "message")
    text, emotes = _fragments(message.get("fragments"))
    color = message.get("userColor") if isinstance(message.get("userColor"), str) else None
    user_id, login, name = (_s(commenter, "id"), _s(commenter, "login"),
                            _s(commenter, "displayName"))  # fmt: skip
    tags = {
        "badges": _badges(message.get("userBadges")),
        "color": color or "",
        "display-name": name or "",
        "emotes": emotes,
        "id": msg_id,
        "user-id": user_id or "",
    }
    raw = ";".join(f"{k}={v.translate(_TAG_ESCAPES)}" for k, v in tags.items())
    return ReplayComment(msg_id, offset, user_id, login.lower() if login else None, name,
                         text, color, raw)  # fmt: skip


def _obj(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _s(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _fragments(fragments: object) -> tuple[str, str]:
    """The message text and its IRC `emotes` tag (code-point ranges, as IRC gives them)."""
    if not isinstance(fragments, list):
        return "", ""
    parts: list[str] = []
    ranges: dict[str, list[str]] = {}
    at = 0
    for fragment in fragments:
        if not isinstance(fragment, dict) or not isinstance(fragment.get("text"), str):
            continue
        text = fragment["text"]
        emote = fragment.get("emote")
        if isinstance(emote, dict) and isinstance(emote.get("emoteID"), str) and text:
            ranges.setdefault(emote["emoteID"], []).append(f"{at}-{at + len(text) - 1}")
        parts.append(text)
        at += len(text)
    emotes = "/".join(f"{e}:{','.join(r)}" for e, r in ranges.items())
    return "".join(parts), emotes


def _badges(badges: object) -> str:
    if not isinstance(badges, list):
        return ""
    found = [f"{b['setID']}/{b.get('version', '')}" for b in badges
             if isinstance(b, dict) and isinstance(b.get("setID"), str) and b["setID"]]  # fmt: skip
    return ",".join(found)


def parse_chapters(body: object) -> tuple[VideoChapter, ...]:
    """The chapter list; empty `edges` (one chapter, the VOD's game) gives no chapters."""
    video = _video(unwrap(body))
    moments = video.get("moments")
    edges = moments.get("edges") if isinstance(moments, dict) else None
    if not isinstance(edges, list):
        raise GqlRefused("malformed", "Twitch GQL: moments without edges")
    chapters: list[VideoChapter] = []
    for edge in edges:
        node = edge.get("node") if isinstance(edge, dict) else None
        if not isinstance(node, dict):
            continue
        start, length = node.get("positionMilliseconds"), node.get("durationMilliseconds")
        if not isinstance(start, int) or not isinstance(length, int) or start < 0 or length < 0:
            continue
        game = _obj(_obj(node, "details"), "game")
        title = _s(node, "description") or _s(game, "displayName") or "Chapter"
        chapters.append(VideoChapter(start, length, title[:200], _s(game, "id")))
    return tuple(sorted(chapters, key=lambda c: c.start_ms))
