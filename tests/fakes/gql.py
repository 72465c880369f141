"""A fake Twitch GQL (`POST /gql`): chat replay and chapters, as ../shared/EXTERNAL-APIS.md says.

Two persisted queries are answered: `VideoCommentsByOffsetOrCursor` (chat replay, pages of
`page_size` comments, by `contentOffsetSeconds` or by `cursor`, never both) and
`VideoPlayer_ChapterSelectButtonVideo` (chapters; the current and the older hash). The body is one
operation object or a one-element array of them, and the answer has the same shape. Cursors are
unpadded base64url of a JSON naming the page's last comment; every edge of a page carries it.

Tests shape state with `add_video`, `add_comments`/`script_chat`, `set_chapters`,
`delete_video`, and queue failures with knobs (`fail_next` for 5xx, `rate_limit_next` for 429,
`integrity_next`, `comments_null_next`, or `integrity_on_cursor` for Twitch's 2025 behaviour of
refusing cursor requests while offset requests still work). `latency_s` delays every answer.
`received` records every request; `reset()` clears knobs and the record.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

COMMENTS_OP = "VideoCommentsByOffsetOrCursor"
COMMENTS_HASH = "b70a3591ff0f4e0313d126c6a1502d79a1c02baebb288227c582044aa76adf6a"
CHAPTERS_OP = "VideoPlayer_ChapterSelectButtonVideo"
CHAPTERS_HASHES = frozenset({
    "71835d5ef425e154bf282453a926d99b328cdc5e32f36d3a209d0f4778b41203",
    "8d2793384aac3773beab5e59bd5d6f585aedb923d292800119e03d40cd0f9b41",
})  # fmt: skip
CLIENT_IDS = frozenset({"kd1unb4b3q4t58fwlpcbzcbnm76a8fp", "kimne78kx3ncx6brgo4mv6wki5h1ko"})
PAGE_SIZE = 50

Payload = dict[str, Any]


@dataclass
class Comment:
    """One chat message of a VOD as GQL holds it."""

    id: str
    offset_s: int
    text: str
    login: str | None = "viewer_one"
    user_id: str = "130565809"
    display_name: str = "Viewer_One"
    color: str | None = "#1E90FF"
    emote: tuple[str, str] | None = None  # (emoteID, text): appended as an emote fragment
    badges: tuple[tuple[str, str], ...] = (("subscriber", "12"),)


@dataclass
class Chapter:
    """One moment of the chapter list."""

    position_ms: int
    duration_ms: int
    description: str
    game_id: str = "509658"


@dataclass
class FakeVideo:
    """A VOD on the fake: its comments in offset order, chapters, whether it was deleted."""

    id: str
    length_s: int
    creator_id: str = "41234567"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(days=1))
    comments: list[Comment] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)  # comment id -> position
    chapters: list[Chapter] = field(default_factory=list)
    deleted: bool = False


@dataclass(frozen=True)
class GqlReceived:
    """One operation the fake answered."""

    operation: str
    variables: Payload
    shape: str  # "object" or "array"
    status: int
    outcome: str  # "ok", "integrity", "comments_null", "video_null", "429", "5xx", "bad"
    headers: dict[str, str]
    at: float


def encode_cursor(comment: Comment) -> str:
    """Unpadded base64url of a JSON naming the comment, as Twitch's cursors are."""
    raw = json.dumps({"id": comment.id, "createdAt": None, "offset": comment.offset_s}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str:
    """The comment id a cursor names; ValueError when it is not one of ours."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        return str(json.loads(base64.urlsafe_b64decode(padded))["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("bad cursor") from exc


class FakeGql:
    """The ASGI app of the fake GQL endpoint."""

    def __init__(self, *, page_size: int = PAGE_SIZE) -> None:
        self.videos: dict[str, FakeVideo] = {}
        self.page_size = page_size
        self.latency_s = 0.0
        self.integrity_on_cursor = False
        self.received: list[GqlReceived] = []
        self._knobs: deque[str] = deque()
        self.served_comments = 0
        self._changed = asyncio.Condition()

    # -- state --------------------------------------------------------------------------------

    def add_video(self, video_id: str, *, length_s: int = 3600, **kwargs: Any) -> FakeVideo:
        """A VOD with no chat yet."""
        video = FakeVideo(video_id, length_s, **kwargs)
        self.videos[video_id] = video
        return video

    def add_comments(self, video_id: str, comments: list[Comment]) -> None:
        """Comments of a VOD, kept in offset order (stable for equal offsets)."""
        video = self.videos[video_id]
        video.comments.extend(comments)
        video.comments.sort(key=lambda c: c.offset_s)
        video.index = {c.id: i for i, c in enumerate(video.comments)}

    def script_chat(
        self, video_id: str, count: int, *, start_s: int = 0, end_s: int | None = None,
        ids: list[str] | None = None,
    ) -> list[Comment]:  # fmt: skip
        """`count` messages spread evenly over [start_s, end_s); their ids random or given."""
        video = self.videos[video_id]
        end = video.length_s if end_s is None else end_s
        span = max(1, end - start_s)
        made = [
            Comment(
                id=ids[i] if ids else str(uuid.uuid4()),
                offset_s=start_s + (i * span) // max(1, count),
                text=f"message {i}",
                login=f"viewer{i % 97}",
                user_id=str(1000 + i % 97),
                display_name=f"Viewer{i % 97}",
                emote=("25", "Kappa") if i % 10 == 0 else None,
            )
            for i in range(count)
        ]
        self.add_comments(video_id, made)
        return made

    def set_chapters(self, video_id: str, chapters: list[Chapter]) -> None:
        """The VOD's moments (GAME_CHANGE chapters)."""
        self.videos[video_id].chapters = list(chapters)

    def delete_video(self, video_id: str) -> None:
        """The VOD is gone: GQL answers `video: null`."""
        self.videos[video_id].deleted = True

    # -- knobs --------------------------------------------------------------------------------

    def pass_next(self, n: int = 1) -> None:
        """The next n operations are answered normally (queue before other knobs)."""
        self._knobs.extend(["pass"] * n)

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """The next n operations answer a 5xx."""
        self._knobs.extend([f"5xx:{status}"] * n)

    def rate_limit_next(self, n: int = 1) -> None:
        """The next n operations answer 429 Too Many Requests."""
        self._knobs.extend(["429"] * n)

    def integrity_next(self, n: int = 1) -> None:
        """The next n comment requests fail the integrity check (HTTP 200 with errors)."""
        self._knobs.extend(["integrity"] * n)

    def comments_null_next(self, n: int = 1) -> None:
        """The next n comment requests answer `comments: null` without errors."""
        self._knobs.extend(["comments_null"] * n)

    def reset(self) -> None:
        """No knobs, no latency, an empty record (videos stay)."""
        self._knobs.clear()
        self.received.clear()
        self.latency_s = 0.0
        self.integrity_on_cursor = False
        self.served_comments = 0

    async def wait_for_requests(self, n: int, operation: str = COMMENTS_OP) -> None:
        """Return once `n` operations of this name have been answered."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.count(operation) >= n)

    def count(self, operation: str = COMMENTS_OP, outcome: str | None = None) -> int:
        """How many operations of this name (and outcome) were answered."""
        return sum(1 for r in self.received
                   if r.operation == operation and (outcome is None or r.outcome == outcome))  # fmt: skip

    # -- HTTP ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if request.url.path.rstrip("/") != "/gql" or request.method != "POST":
            await Response(b'{"error":"Not Found","status":404}', 404,
                           media_type="application/json")(scope, receive, send)  # fmt: skip
            return
        response = await self._handle(request)
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        await response(scope, receive, send)
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, request: Request) -> Response:
        at = time.monotonic()
        headers = dict(request.headers)
        raw = await request.body()
        if headers.get("client-id") not in CLIENT_IDS:
            self._record("?", {}, shape="object", status=400, outcome="bad", headers=headers, at=at)
            return _json(400, {"error": "Bad Request", "status": 400,
                               "message": 'The "Client-ID" header is missing from the request.'})  # fmt: skip
        try:
            body = json.loads(raw)
        except ValueError:
            self._record("?", {}, shape="object", status=400, outcome="bad", headers=headers, at=at)
            return _json(400, {"error": "Bad Request", "status": 400,
                               "message": "The request body is not valid JSON."})  # fmt: skip
        shape = "array" if isinstance(body, list) else "object"
        ops = body if isinstance(body, list) else [body]
        if len(ops) != 1 or not isinstance(ops[0], dict):
            self._record("?", {}, shape=shape, status=400, outcome="bad", headers=headers, at=at)
            return _json(400, {"error": "Bad Request", "status": 400, "message": "one operation"})
        op = ops[0]
        name = str(op.get("operationName", "?"))
        variables: Payload = op["variables"] if isinstance(op.get("variables"), dict) else {}
        first = self._knobs[0] if self._knobs else ""
        passed = first == "pass"
        if passed:
            self._knobs.popleft()
        if first == "429" or first.startswith("5xx"):
            self._knobs.popleft()
            status = 429 if first == "429" else int(first.split(":")[1])
            outcome = "429" if status == 429 else "5xx"
            self._record(
                name, variables, shape=shape, status=status, outcome=outcome, headers=headers, at=at
            )
            message = b"Too Many Requests" if status == 429 else b"upstream connect error"
            return Response(message, status, media_type="text/plain")
        digest = op.get("extensions", {}).get("persistedQuery", {}).get("sha256Hash")
        if name == COMMENTS_OP and digest == COMMENTS_HASH:
            outcome, answer = self._comments(variables, passed=passed)
        elif name == CHAPTERS_OP and digest in CHAPTERS_HASHES:
            outcome, answer = "ok", self._chapters(variables)
        else:
            outcome = "bad"
            answer = {"errors": [{"message": "PersistedQueryNotFound"}], "data": None}
        self._record(
            name, variables, shape=shape, status=200, outcome=outcome, headers=headers, at=at
        )
        return _json(200, [answer] if shape == "array" else answer)

    def _record(self, name: str, variables: Payload, *, shape: str, status: int, outcome: str,
                headers: dict[str, str], at: float) -> None:  # fmt: skip
        self.received.append(
            GqlReceived(name, dict(variables), shape, status, outcome, headers, at)
        )

    def _comments(self, variables: Payload, *, passed: bool) -> tuple[str, Payload]:
        ext = {"durationMilliseconds": 54, "operationName": COMMENTS_OP}
        video = self.videos.get(str(variables.get("videoID")))
        if video is None or video.deleted:
            return "video_null", {"data": {"video": None}, "extensions": ext}
        cursor, offset = variables.get("cursor"), variables.get("contentOffsetSeconds")
        if (cursor is None) == (offset is None):
            return "bad", {"errors": [{"message": "exactly one of cursor and contentOffsetSeconds",
                                       "path": ["video", "comments"]}],
                           "data": {"video": {"comments": None}}}  # fmt: skip
        knob = self._knobs[0] if self._knobs and not passed else None
        if knob == "integrity" or (cursor is not None and self.integrity_on_cursor):
            if knob == "integrity":
                self._knobs.popleft()
            return "integrity", {
                "errors": [{"message": "failed integrity check", "path": ["video", "comments"]}],
                "data": {"video": {"comments": None}},
                "extensions": {"challenge": {"type": "integrity"}},
            }
        if knob == "comments_null":
            self._knobs.popleft()
            return "comments_null", {"data": {"video": {"id": video.id, "comments": None}},
                                     "extensions": ext}  # fmt: skip
        comments = video.comments
        if cursor is not None:
            try:
                last_id = decode_cursor(str(cursor))
            except ValueError:
                return "bad", {"errors": [{"message": "invalid cursor"}], "data": None}
            index = video.index.get(last_id)
            if index is None:
                return "bad", {"errors": [{"message": "invalid cursor"}], "data": None}
            start = index + 1
        else:
            wanted = int(offset)  # type: ignore[arg-type]
            start = bisect.bisect_left(comments, wanted, key=lambda c: c.offset_s)
        page = comments[start : start + self.page_size]
        self.served_comments += len(page)
        page_cursor = encode_cursor(page[-1]) if page else None
        edges = [{"cursor": page_cursor, "node": self._node(video, c)} for c in page]
        info = {"hasNextPage": start + len(page) < len(comments), "hasPreviousPage": start > 0}
        creator = {"id": video.creator_id, "channel": {"id": video.creator_id}}
        return "ok", {
            "data": {"video": {"id": video.id, "creator": creator,
                               "comments": {"edges": edges, "pageInfo": info}}},
            "extensions": ext,
        }  # fmt: skip

    def _node(self, video: FakeVideo, c: Comment) -> Payload:
        fragments: list[Payload] = [{"emote": None, "text": c.text}]
        if c.emote is not None:
            start = len(c.text) + 1
            fragments[0]["text"] = c.text + " "
            emote_id, word = c.emote
            fragments.append({"emote": {"id": f"{emote_id};{start};{start + len(word)}",
                                        "emoteID": emote_id, "from": start}, "text": word})  # fmt: skip
        created = video.created_at + timedelta(seconds=c.offset_s)
        return {
            "id": c.id,
            "commenter": None if c.login is None else
            {"id": c.user_id, "login": c.login, "displayName": c.display_name},
            "contentOffsetSeconds": c.offset_s,
            "createdAt": created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "message": {
                "fragments": fragments,
                "userBadges": [{"id": base64.b64encode(f"{s};{v};".encode()).decode(),
                                "setID": s, "version": v} for s, v in c.badges],
                "userColor": c.color,
            },
        }  # fmt: skip

    def _chapters(self, variables: Payload) -> Payload:
        video = self.videos.get(str(variables.get("videoID")))
        if video is None or video.deleted:
            return {"data": {"video": None}}
        edges = [{"node": {
            "id": f"m-{i}", "type": "GAME_CHANGE", "positionMilliseconds": ch.position_ms,
            "durationMilliseconds": ch.duration_ms, "description": ch.description,
            "details": {"game": {"id": ch.game_id, "displayName": ch.description}},
            "video": {"id": video.id, "lengthSeconds": video.length_s},
        }} for i, ch in enumerate(video.chapters)]  # fmt: skip
        return {"data": {"video": {"id": video.id, "moments": {"edges": edges}}}}


def _json(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status,
                    media_type="application/json")  # fmt: skip
