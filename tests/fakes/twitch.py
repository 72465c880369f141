"""A fake Twitch: the app-token endpoints of id.twitch.tv and the Helix calls the daemon makes.

It speaks the wire formats the public Twitch documentation gives for the app token and Helix, on
one ASGI app: `/oauth2/token`, `/oauth2/validate` and `/helix/{users,videos,streams}`. Tests
shape its state with plain methods (`add_channel`, `add_vods`, `go_live`, ...), queue failures
with knobs (`fail_next`, `answer_429_next`, `malformed_json_next`, ...), and read what it was
sent from `received`. Knobs are per endpoint and consumed in the order they were queued.

Rate limiting follows Twitch's token bucket: 800 points a minute per app token (here: per fake),
one point a Helix request, `Ratelimit-Reset` in Unix seconds when the bucket is full again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

ENDPOINTS = frozenset({"token", "validate", "users", "videos", "streams"})
HELIX_ENDPOINTS = frozenset({"users", "videos", "streams"})
TOKEN_LIFETIME_S = 5011271  # what id.twitch.tv gives app tokens (about 58 days)
RATE_LIMIT = 800
RATE_WINDOW_S = 60.0
MAX_IDS = 100
HTML_BODY = (
    b"<!DOCTYPE html><html><head><title>Twitch</title></head>"
    b"<body><h1>Something went wrong</h1><p>Please try again later.</p></body></html>"
)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

Payload = dict[str, Any]


def twitch_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z and whole seconds, as Helix writes timestamps."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(seconds: int) -> str:
    """Helix's duration format: "3h8m33s", "12m0s", "45s"."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def parse_duration(text: str) -> int:
    """Seconds in a Helix duration; the inverse of format_duration."""
    match = _DURATION.match(text)
    if match is None or not text:
        raise ValueError(f"not a Helix duration: {text!r}")
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


def encode_cursor(offset: int) -> str:
    """An opaque cursor shaped like Twitch's (base64 of {"b":null,"a":{"Offset":n}})."""
    raw = json.dumps({"b": None, "a": {"Offset": offset}}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The offset in a cursor made by encode_cursor; ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = json.loads(raw)["a"]["Offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"bad cursor {cursor!r}") from exc
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"bad cursor {cursor!r}")
    return offset


def _json(payload: Payload) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Received:
    """One request the fake answered, and the status it answered with."""

    endpoint: str
    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    status: int
    at: float
    form: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class FakeChannel:
    """A Twitch user; `videos` is kept newest first, `stream` is set while live."""

    login: str
    user_id: str
    display_name: str
    broadcaster_type: str
    created_at: str
    description: str = ""
    videos: list[Payload] = field(default_factory=list)
    stream: Payload | None = None

    def user(self) -> Payload:
        """The Helix user object."""
        cdn = "https://static-cdn.jtvnw.net/jtv_user_pictures"
        return {
            "id": self.user_id,
            "login": self.login,
            "display_name": self.display_name,
            "type": "",
            "broadcaster_type": self.broadcaster_type,
            "description": self.description,
            "profile_image_url": f"{cdn}/{self.login}-profile_image-300x300.png",
            "offline_image_url": f"{cdn}/{self.login}-channel_offline_image-1920x1080.png",
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class _Canned:
    """A knob that answers instead of the fake."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    reset_in_s: float | None = None  # a 429 whose Ratelimit-Reset is computed when it answers


@dataclass(frozen=True)
class _PassThrough:
    """A knob that lets one request be answered normally (to aim the next knob further on)."""


@dataclass(frozen=True)
class _Rewrite:
    """A knob that alters the body of the fake's next 200 answer."""

    kind: str  # "malformed" | "huge" | "corrupt"
    size_bytes: int = 0
    video_id: str | None = None


class FakeTwitch:
    """id.twitch.tv and Helix in one ASGI app, with state, knobs and a record of requests."""

    def __init__(
        self,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",  # noqa: S107  # a test credential, not a secret
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self._initial_secret = client_secret
        self.token_lifetime_s = TOKEN_LIFETIME_S
        self.latency_s = 0.0
        self.streams_offline_next = 0  # knob: this many /streams answers say "offline" (a flap)
        self.received: list[Received] = []
        self.channels: dict[str, FakeChannel] = {}
        self._videos: dict[str, tuple[FakeChannel, Payload]] = {}
        self._stream_ids: set[str] = set()
        self._tokens: dict[str, float] = {}  # token -> wall-clock expiry
        self._serial = 0
        self._knobs: dict[str, deque[_Canned | _Rewrite | _PassThrough]] = {
            e: deque() for e in ENDPOINTS
        }
        self._looping: set[str] = set()
        self._remaining = RATE_LIMIT
        self._reset_at = time.time() + RATE_WINDOW_S
        routes = [
            Route("/oauth2/token", self._endpoint("token"), methods=["POST"]),
            Route("/oauth2/validate", self._endpoint("validate"), methods=["GET"]),
        ]
        routes += [
            Route(f"/helix/{e}", self._endpoint(e), methods=["GET"]) for e in HELIX_ENDPOINTS
        ]
        # Anything else is recorded as "unknown", so a wrong base URL shows in `received`.
        routes.append(Route("/{path:path}", self._endpoint("unknown"), methods=["GET", "POST"]))
        self._app = Starlette(routes=routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    # -- state ---------------------------------------------------------------------------------

    def add_channel(
        self,
        login: str,
        *,
        user_id: str | None = None,
        broadcaster_type: str = "",
        display_name: str | None = None,
    ) -> FakeChannel:
        """A new Twitch user; logins are lower case and unique."""
        login = login.lower()
        if login in self.channels:
            raise ValueError(f"channel {login!r} already exists")
        channel = FakeChannel(
            login=login,
            user_id=user_id or self._new_id(100_000_000),
            display_name=display_name or login.capitalize(),
            broadcaster_type=broadcaster_type,
            created_at="2016-12-14T20:32:28Z",
        )
        self.channels[login] = channel
        return channel

    def channel(self, login: str) -> FakeChannel:
        """The channel with this login; KeyError when there is none."""
        try:
            return self.channels[login.lower()]
        except KeyError:
            raise KeyError(f"no fake channel {login!r}; add_channel() first") from None

    def video(self, video_id: str) -> Payload:
        """The stored video object (changes to it show in later answers)."""
        return self._videos[video_id][1]

    def add_vods(
        self,
        login: str,
        count: int,
        *,
        start: datetime | None = None,
        spacing: timedelta = timedelta(hours=24),
        duration_s: int = 3600,
    ) -> list[Payload]:
        """`count` archives going back in time from `start` (default an hour ago), newest first."""
        start = start or datetime.now(UTC) - timedelta(hours=1)
        return [
            self.add_vod(login, created_at=start - i * spacing, duration_s=duration_s)
            for i in range(count)
        ]

    def add_vod(
        self,
        login: str,
        *,
        video_id: str | None = None,
        stream_id: str | None = None,
        created_at: datetime | None = None,
        duration_s: int = 3600,
        title: str | None = None,
        muted_segments: list[dict[str, int]] | None = None,
        kind: str = "archive",
    ) -> Payload:
        """One video (an archive unless `kind` says highlight or upload), placed among the channel's videos by created_at (newest first)."""
        channel = self.channel(login)
        video_id = video_id or self._new_id(2_000_000_000)
        if video_id in self._videos:
            raise ValueError(f"video {video_id!r} already exists")
        stream_id = stream_id or self._new_id(40_000_000_000)
        self._stream_ids.add(stream_id)
        when = twitch_time(created_at or datetime.now(UTC) - timedelta(hours=1))
        video: Payload = {
            "id": video_id,
            "stream_id": stream_id,
            "user_id": channel.user_id,
            "user_login": channel.login,
            "user_name": channel.display_name,
            "title": title if title is not None else f"{channel.display_name} stream {video_id}",
            "description": "",
            "created_at": when,
            "published_at": when,
            "url": f"https://www.twitch.tv/videos/{video_id}",
            "thumbnail_url": (
                f"https://static-cdn.jtvnw.net/cf_vods/fake/{channel.login}_{stream_id}"
                "/thumb/thumb0-%{width}x%{height}.jpg"
            ),
            "viewable": "public",
            "view_count": int(video_id) % 9973 if video_id.isdigit() else 0,
            "language": "en",
            "type": kind,
            "duration": format_duration(duration_s),
            "muted_segments": muted_segments,
        }
        index = 0
        while index < len(channel.videos) and channel.videos[index]["created_at"] > when:
            index += 1
        channel.videos.insert(index, video)
        self._videos[video_id] = (channel, video)
        return video

    def go_live(
        self, login: str, *, stream_id: str | None = None, started_at: datetime | None = None
    ) -> Payload:
        """The channel goes live; its archive (duration "0s") is listed from now on."""
        channel = self.channel(login)
        stream_id = stream_id or self._new_id(40_000_000_000)
        started = started_at or datetime.now(UTC)
        title = f"{channel.display_name} live"
        channel.stream = {
            "id": stream_id,
            "user_id": channel.user_id,
            "user_login": channel.login,
            "user_name": channel.display_name,
            "game_id": "509658",
            "game_name": "Just Chatting",
            "type": "live",
            "title": title,
            "viewer_count": 42,
            "started_at": twitch_time(started),
            "language": "en",
            "thumbnail_url": (
                "https://static-cdn.jtvnw.net/previews-ttv/"
                f"live_user_{channel.login}-{{width}}x{{height}}.jpg"
            ),
            "tags": [],
            "is_mature": False,
        }
        if not any(v["stream_id"] == stream_id for v in channel.videos):
            self.add_vod(login, stream_id=stream_id, created_at=started, duration_s=0, title=title)
        return channel.stream

    def live_vod(self, login: str) -> Payload:
        """The archive of the channel's current stream."""
        channel = self.channel(login)
        if channel.stream is None:
            raise ValueError(f"channel {login!r} is not live")
        stream_id = channel.stream["id"]
        for video in channel.videos:
            if video["stream_id"] == stream_id:
                return video
        raise KeyError(f"the live archive of {login!r} was deleted")

    def grow_live_vod(self, login: str, seconds: int) -> None:
        """The live archive's duration grows by `seconds`."""
        video = self.live_vod(login)
        video["duration"] = format_duration(parse_duration(video["duration"]) + seconds)

    def end_stream(self, login: str) -> None:
        """The channel goes offline; its archive stays."""
        self.channel(login).stream = None

    def delete_vod(self, video_id: str) -> None:
        """The video disappears from every listing and id lookup."""
        channel, video = self._videos.pop(video_id)
        channel.videos.remove(video)

    def set_title(self, video_id: str, title: str) -> None:
        """Rename a video."""
        self.video(video_id)["title"] = title

    def _new_id(self, base: int) -> str:
        while True:
            self._serial += 1
            candidate = str(base + self._serial)
            taken = candidate in self._videos or candidate in self._stream_ids
            if not taken and all(c.user_id != candidate for c in self.channels.values()):
                return candidate

    # -- knobs ---------------------------------------------------------------------------------

    def fail_next(
        self,
        endpoint: str,
        status: int,
        *,
        times: int = 1,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        let_through: int = 0,
    ) -> None:
        """After `let_through` normal answers, the next `times` requests to `endpoint` get this
        answer instead (default: a Twitch error body)."""
        for _ in range(let_through):
            self._queue(endpoint, _PassThrough())
        if body is None:
            body = _json(self._error_payload(endpoint, status, "fake failure"))
        raw = body.encode() if isinstance(body, str) else body
        for _ in range(times):
            self._queue(endpoint, _Canned(status, raw, content_type, dict(headers or {})))

    def answer_429_next(self, endpoint: str, reset_in_s: float) -> None:
        """The next request gets 429, Remaining 0 and Reset = ceil(now + reset_in_s)."""
        body = _json(self._error_payload(endpoint, 429, "Too Many Requests"))
        self._queue(endpoint, _Canned(429, body, "application/json", reset_in_s=reset_in_s))

    def html_next(self, endpoint: str) -> None:
        """The next answer is 200 with an HTML page (a proxy's error page, say)."""
        self._queue(endpoint, _Canned(200, HTML_BODY, "text/html; charset=utf-8"))

    def malformed_json_next(self, endpoint: str) -> None:
        """The next 200 answer's JSON is cut in half."""
        self._queue(endpoint, _Rewrite("malformed"))

    def huge_page_next(self, endpoint: str, size_bytes: int = 20_000_000) -> None:
        """The next 200 answer is valid JSON of exactly `size_bytes` (one enormous description)."""
        self._queue(endpoint, _Rewrite("huge", size_bytes=size_bytes))

    def corrupt_fields_next(self, endpoint: str, *, video_id: str | None = None) -> None:
        """In the next 200 answer that has it, one item (the first, or `video_id`) gets bad fields."""
        self._queue(endpoint, _Rewrite("corrupt", video_id=video_id))

    def looping_cursor(self, login: str) -> None:
        """Every page of this channel's video listing repeats the first page's cursor."""
        self._looping.add(self.channel(login).login)

    def set_ratelimit(self, remaining: int, reset_in_s: float) -> None:
        """The bucket holds `remaining` points until now + reset_in_s, then refills."""
        self._remaining = remaining
        self._reset_at = time.time() + reset_in_s

    def revoke_tokens(self) -> None:
        """Every issued token becomes invalid."""
        self._tokens.clear()

    def reset(self, *, all: bool = False) -> None:
        """No knobs, an empty record and a full bucket; channels and tokens go too with all=True."""
        for queue in self._knobs.values():
            queue.clear()
        self._looping.clear()
        self.received.clear()
        self.latency_s = 0.0
        self.streams_offline_next = 0
        self.client_secret = self._initial_secret
        self.token_lifetime_s = TOKEN_LIFETIME_S
        self._remaining = RATE_LIMIT
        self._reset_at = time.time() + RATE_WINDOW_S
        if all:
            self.channels.clear()
            self._videos.clear()
            self._stream_ids.clear()
            self._tokens.clear()

    def count(self, endpoint: str) -> int:
        """How many requests to `endpoint` were answered."""
        return sum(1 for r in self.received if r.endpoint == endpoint)

    def _queue(self, endpoint: str, knob: _Canned | _Rewrite | _PassThrough) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(ENDPOINTS)}")
        self._knobs[endpoint].append(knob)

    # -- HTTP ----------------------------------------------------------------------------------

    def _endpoint(self, name: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            at = time.monotonic()
            body = await request.body()
            form: dict[str, list[str]] = {}
            if body and request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                form = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
            params = parse_qs(request.url.query, keep_blank_values=True)
            response = self._answer(name, request, params, form)
            self.received.append(
                Received(
                    endpoint=name,
                    method=request.method,
                    path=request.url.path,
                    params=params,
                    headers=dict(request.headers),
                    status=response.status_code,
                    at=at,
                    form=form,
                )
            )
            if self.latency_s > 0:
                await asyncio.sleep(self.latency_s)
            return response

        return handle

    def _answer(
        self,
        name: str,
        request: Request,
        params: dict[str, list[str]],
        form: dict[str, list[str]],
    ) -> Response:
        if name not in ENDPOINTS:
            return self._respond(404, {"error": "Not Found", "status": 404, "message": "Not Found"})
        knobs = self._knobs[name]
        knob = knobs.popleft() if knobs else None
        if isinstance(knob, _PassThrough):
            knob = None
        if isinstance(knob, _Canned):
            headers = dict(knob.headers)
            if knob.reset_in_s is not None:
                headers.update(self._ratelimit_headers(0, time.time() + knob.reset_in_s))
            return Response(knob.body, knob.status, headers, media_type=knob.content_type)
        headers = {}
        if name == "token":
            status, payload = self._token({**params, **form})
        elif name == "validate":
            status, payload = self._validate(request)
        else:
            status, payload, headers = self._helix(name, request, params)
        if knob is not None:
            rewritten = self._rewrite(knob, status, payload)
            if rewritten is None:
                knobs.appendleft(knob)  # waits for an answer it can apply to
            else:
                return Response(rewritten, status, headers, media_type="application/json")
        return self._respond(status, payload, headers)

    def _respond(
        self, status: int, payload: Payload, headers: dict[str, str] | None = None
    ) -> Response:
        return Response(_json(payload), status, headers, media_type="application/json")

    def _error_payload(self, endpoint: str, status: int, message: str) -> Payload:
        if endpoint in HELIX_ENDPOINTS:
            return {"error": HTTPStatus(status).phrase, "status": status, "message": message}
        return {"status": status, "message": message}

    def _token(self, fields: dict[str, list[str]]) -> tuple[int, Payload]:
        def first(key: str) -> str | None:
            values = fields.get(key)
            return values[0] if values else None

        if first("client_id") != self.client_id:
            return 400, {"status": 400, "message": "invalid client"}
        if first("client_secret") != self.client_secret:
            return 400, {"status": 400, "message": "invalid client secret"}
        if first("grant_type") != "client_credentials":
            return 400, {"status": 400, "message": "unsupported grant type"}
        token = secrets.token_hex(15)
        self._tokens[token] = time.time() + self.token_lifetime_s
        return 200, {
            "access_token": token,
            "expires_in": self.token_lifetime_s,
            "token_type": "bearer",
        }

    def _token_left_s(self, token: str) -> float | None:
        expiry = self._tokens.get(token)
        if expiry is None or expiry <= time.time():
            return None
        return expiry - time.time()

    def _validate(self, request: Request) -> tuple[int, Payload]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        left = self._token_left_s(token.strip()) if scheme.lower() == "oauth" else None
        if left is None:
            return 401, {"status": 401, "message": "invalid access token"}
        return 200, {
            "client_id": self.client_id,
            "login": "",
            "scopes": [],
            "user_id": "",
            "expires_in": int(left),
        }

    def _helix(
        self, name: str, request: Request, params: dict[str, list[str]]
    ) -> tuple[int, Payload, dict[str, str]]:
        now = time.time()
        if now >= self._reset_at:
            self._remaining = RATE_LIMIT
            self._reset_at = now + RATE_WINDOW_S
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        problem = None
        if not auth:
            problem = "OAuth token is missing"
        elif scheme.lower() != "bearer" or self._token_left_s(token.strip()) is None:
            problem = "Invalid OAuth token"
        elif request.headers.get("client-id") != self.client_id:
            problem = "Client ID and OAuth token do not match"
        if problem is not None:
            headers = self._ratelimit_headers(self._remaining, self._reset_at)
            return 401, {"error": "Unauthorized", "status": 401, "message": problem}, headers
        if self._remaining <= 0:
            headers = self._ratelimit_headers(0, self._reset_at)
            return 429, self._error_payload(name, 429, "Too Many Requests"), headers
        self._remaining -= 1
        headers = self._ratelimit_headers(self._remaining, self._reset_at)
        handler = {"users": self._users, "videos": self._videos_page, "streams": self._streams}
        status, payload = handler[name](params)
        return status, payload, headers

    @staticmethod
    def _ratelimit_headers(remaining: int, reset_at: float) -> dict[str, str]:
        return {
            "Ratelimit-Limit": str(RATE_LIMIT),
            "Ratelimit-Remaining": str(max(0, remaining)),
            "Ratelimit-Reset": str(math.ceil(reset_at)),
        }

    def _bad_request(self, message: str) -> tuple[int, Payload]:
        return 400, {"error": "Bad Request", "status": 400, "message": message}

    def _first(self, params: dict[str, list[str]], default: int) -> int | None:
        raw = params.get("first", [str(default)])[0]
        try:
            value = int(raw)
        except ValueError:
            return None
        return value if 1 <= value <= MAX_IDS else None

    def _users(self, params: dict[str, list[str]]) -> tuple[int, Payload]:
        logins, ids = params.get("login", []), params.get("id", [])
        if not logins and not ids:
            return self._bad_request("Must provide an ID, Login or OAuth Token")
        if len(logins) + len(ids) > MAX_IDS:
            return self._bad_request("The sum of login and id must not exceed 100")
        found: list[FakeChannel] = [
            self.channels[x.lower()] for x in logins if x.lower() in self.channels
        ]
        found += [c for x in ids for c in self.channels.values() if c.user_id == x]
        unique = list({c.login: c for c in found}.values())
        return 200, {"data": [c.user() for c in unique]}

    def _videos_page(self, params: dict[str, list[str]]) -> tuple[int, Payload]:
        selectors = [k for k in ("id", "user_id", "game_id") if params.get(k)]
        if len(selectors) != 1:
            return self._bad_request('Exactly one of "id", "user_id" or "game_id" must be given')
        if selectors == ["id"]:
            ids = params["id"]
            if len(ids) > MAX_IDS:
                return self._bad_request('The parameter "id" may be given at most 100 times')
            found = [self._videos[i][1] for i in dict.fromkeys(ids) if i in self._videos]
            if not found:
                return 404, {"error": "Not Found", "status": 404, "message": "Videos not found"}
            return 200, {"data": found, "pagination": {}}
        first = self._first(params, 20)
        if first is None:
            return self._bad_request('The parameter "first" was malformed: must be 1 to 100')
        kind = params.get("type", ["all"])[0]
        if kind not in {"all", "archive", "highlight", "upload"}:
            return self._bad_request('The parameter "type" was malformed')
        offset = 0
        if params.get("after"):
            try:
                offset = decode_cursor(params["after"][0])
            except ValueError:
                return self._bad_request("Invalid cursor")
        if selectors == ["game_id"]:
            return 200, {"data": [], "pagination": {}}
        user_id = params["user_id"][0]
        channel = next((c for c in self.channels.values() if c.user_id == user_id), None)
        if channel is None:
            return 200, {"data": [], "pagination": {}}
        videos = [v for v in channel.videos if kind in ("all", v["type"])]
        page = videos[offset : offset + first]
        pagination: Payload = {}
        if channel.login in self._looping:
            pagination = {"cursor": encode_cursor(first)}
        elif offset + first < len(videos):
            pagination = {"cursor": encode_cursor(offset + first)}
        return 200, {"data": page, "pagination": pagination}

    def _streams(self, params: dict[str, list[str]]) -> tuple[int, Payload]:
        ids, logins = params.get("user_id", []), [x.lower() for x in params.get("user_login", [])]
        if len(ids) + len(logins) > MAX_IDS:
            return self._bad_request("The sum of user_id and user_login must not exceed 100")
        first = self._first(params, 20)
        if first is None:
            return self._bad_request('The parameter "first" was malformed: must be 1 to 100')
        live = [c for c in self.channels.values() if c.stream is not None]
        if self.streams_offline_next > 0:
            self.streams_offline_next -= 1
            live = []
        if ids or logins:
            live = [c for c in live if c.user_id in ids or c.login in logins]
        return 200, {"data": [c.stream for c in live[:first]], "pagination": {}}

    def _rewrite(self, knob: _Canned | _Rewrite, status: int, payload: Payload) -> bytes | None:
        """The altered body, or None when this answer is not one the knob can apply to."""
        if not isinstance(knob, _Rewrite) or status != 200:
            return None
        if knob.kind == "malformed":
            body = _json(payload)
            return body[: max(1, len(body) // 2)]
        data = payload.get("data")
        items: list[Payload] = data if isinstance(data, list) else []
        if knob.kind == "huge":
            payload = dict(payload)
            target: Payload = payload
            key = "padding"
            if items:
                items = list(items)
                target = items[0] = dict(items[0])
                key = "description" if "description" in target else "title"
                payload["data"] = items
            target[key] = ""
            target[key] = "x" * max(0, knob.size_bytes - len(_json(payload)))
            return _json(payload)
        index = next(
            (i for i, item in enumerate(items) if knob.video_id in (None, item.get("id"))), None
        )
        if index is None:
            return None
        items = list(items)
        item = items[index] = dict(items[index])
        item["id"] = None
        item.pop("created_at", None)
        item.pop("started_at", None)
        if "duration" in item:
            item["duration"] = 42
        if "user_login" in item:
            item["user_login"] = 42
        return _json({**payload, "data": items})
