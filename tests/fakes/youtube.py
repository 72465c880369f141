"""A fake Google: the OAuth 2.0 token endpoint and the YouTube Data API v3 calls the daemon makes.

One ASGI app serves both hosts' paths, so the daemon is pointed at it with
GOOGLE_TOKEN_URL=`{base}/token` and YOUTUBE_API_URL=`{base}`:
- `POST /token`: the refresh-token and authorization-code grants of oauth2.googleapis.com;
- `POST /upload/youtube/v3/videos?uploadType=resumable&part=...`: opens a resumable session whose
  URI (the `Location`) takes `PUT`s of chunks (`Content-Range: bytes a-b/total`) and status
  queries (`Content-Range: bytes */total`), answering `308` with `Range` until the last byte and
  then `200` with the video resource;
- `GET /youtube/v3/videos`, `GET /youtube/v3/channels`, `GET|POST /youtube/v3/playlistItems`;
- `GET /_fake/videos`, `GET /_fake/stats`: test-only inspection, for a fake in its own process.

Tests shape state with plain methods (`add_refresh_token`, `add_existing_video`,
`set_processing`, ...), queue failures with knobs (`answer_next`, `fail_chunks`,
`cut_next_chunk`, ...; per endpoint, consumed in the order queued) and read what the fake was
sent from `requests`, `videos`, `sessions` and `bytes_received`.

Chunk bodies are streamed, never held whole: a session keeps a running sha256 of its committed
bytes, and the chunk in flight is hashed up to its last 256 KiB boundary as it arrives, holding
less than 256 KiB unhashed. 256 KiB is Google's chunk granularity: every chunk but the last must
be a multiple of it, and a chunk whose connection is cut keeps its bytes up to the last boundary
that arrived (a status query then reports them), which is how a client learns where to resume.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.types import Message, Receive, Scope, Send

ALIGN = 256 * 1024  # YouTube's chunk granularity
SCOPE = "https://www.googleapis.com/auth/youtube.upload https://www.googleapis.com/auth/youtube"
ACCESS_TOKEN_TTL_S = 3599
TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000
TAGS_MAX_CHARS = 500
MAX_RESULTS = 50
MAX_JSON_BYTES = 1024 * 1024
UPLOAD_PATH = "/upload/youtube/v3/videos"
API_ENDPOINTS = frozenset(
    {
        "insert",
        "chunk",
        "videos.list",
        "channels.list",
        "playlistItems.list",
        "playlistItems.insert",
        "videos.delete",
        "thumbnails.set",
        "captions.list",
        "captions.insert",
    }
)
THUMBNAIL_PATH = "/upload/youtube/v3/thumbnails/set"
CAPTIONS_UPLOAD_PATH = "/upload/youtube/v3/captions"
THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024
CAPTION_MAX_BYTES = 100 * 1024 * 1024
# Units a successful call costs (YouTube's published costs; videos.insert as it used to be).
QUOTA_COSTS = {
    "insert": 1600,
    "videos.list": 1,
    "channels.list": 1,
    "playlistItems.list": 1,
    "playlistItems.insert": 50,
    "videos.delete": 50,
    "thumbnails.set": 50,
    "captions.list": 50,
    "captions.insert": 400,
}
UPLOAD_STATUSES = frozenset({"uploaded", "processed", "failed", "rejected", "deleted"})
_PROCESSING = {
    "uploaded": "processing",
    "processed": "succeeded",
    "failed": "failed",
    "rejected": "terminated",
    "deleted": "terminated",
}
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")
_AUTH_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)

Payload = dict[str, Any]


@dataclass(frozen=True)
class _Reason:
    status: int
    domain: str
    message: str


REASONS: dict[str, _Reason] = {
    "quotaExceeded": _Reason(
        403,
        "youtube.quota",
        'The request cannot be completed because you have exceeded your <a href="/youtube/v3/'
        'getting-started#quota">quota</a>.',
    ),
    "uploadLimitExceeded": _Reason(
        400, "youtube.video", "The user has exceeded the number of videos they may upload."
    ),
    "rateLimitExceeded": _Reason(403, "usageLimits", "Rate Limit Exceeded"),
    "backendError": _Reason(503, "global", "Backend Error"),
    "authError": _Reason(401, "global", "Invalid Credentials"),
    "invalidTitle": _Reason(
        400, "youtube.video", "The request metadata specifies an invalid video title."
    ),
    "invalidDescription": _Reason(
        400, "youtube.video", "The request metadata specifies an invalid video description."
    ),
    "invalidTags": _Reason(
        400, "youtube.video", "The request metadata specifies invalid video keywords."
    ),
    "invalidCategoryId": _Reason(
        400, "youtube.video", "The snippet.categoryId property specifies an invalid category ID."
    ),
    "parseError": _Reason(400, "global", "Parse Error"),
    "badRequest": _Reason(400, "global", "Bad Request"),
    "missingRequiredParameter": _Reason(400, "youtube.parameter", "No filter selected."),
    "invalidPageToken": _Reason(
        400, "youtube.parameter", "The request specifies an invalid page token."
    ),
    "notFound": _Reason(404, "global", "Not Found"),
    "videoNotFound": _Reason(404, "youtube.playlistItem", "Video not found."),
    "playlistNotFound": _Reason(
        404,
        "youtube.playlistItem",
        "The playlist identified with the request's playlistId parameter cannot be found.",
    ),
    "playlistOperationUnsupported": _Reason(
        400, "youtube.playlistItem", "The playlist does not support the ability to add videos."
    ),
    "forbidden": _Reason(
        403,
        "youtube.thumbnail",
        "The authenticated user doesn't have permissions to upload and set custom video "
        "thumbnails.",
    ),
    "invalidImage": _Reason(400, "youtube.thumbnail", "The provided image content is invalid."),
    "mediaBodyRequired": _Reason(
        400, "youtube.thumbnail", "The request does not include the image content."
    ),
    "insufficientPermissions": _Reason(
        403, "global", "Request had insufficient authentication scopes."
    ),
    "invalidMetadata": _Reason(400, "youtube.caption", "The request contains invalid metadata."),
    "contentRequired": _Reason(
        400, "youtube.caption", "The request does not contain the caption track contents."
    ),
}
KNOB_REASONS = frozenset(
    {"quotaExceeded", "uploadLimitExceeded", "rateLimitExceeded", "backendError", "authError",
     "forbidden", "insufficientPermissions"}
)  # fmt: skip


def youtube_error(reason: str, message: str | None = None, status: int | None = None) -> _Answer:
    """An answer in the YouTube Data API's error shape for `reason` (a key of REASONS)."""
    spec = REASONS[reason]
    code = status or spec.status
    if reason == "authError":
        detail: Payload = {"message": spec.message, "domain": "global", "reason": "authError",
                           "location": "Authorization", "locationType": "header"}  # fmt: skip
        payload = {"code": code, "message": _AUTH_MESSAGE, "errors": [detail],
                   "status": "UNAUTHENTICATED"}  # fmt: skip
        return _Answer(code, {"error": payload})
    text = message or spec.message
    errors = [{"message": text, "domain": spec.domain, "reason": reason}]
    return _Answer(code, {"error": {"code": code, "message": text, "errors": errors}})


def google_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z and whole seconds, as YouTube writes publishedAt."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tags_length(tags: list[str]) -> int:
    """YouTube's count for the 500-character tag limit: a tag with a space counts its quotes,
    and the commas between tags count."""
    return sum(len(t) + (2 if " " in t else 0) for t in tags) + max(0, len(tags) - 1)


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _page_offset(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    kind, _, number = text.partition(":")
    return int(number) if kind == "offset" and number.isdigit() else None


@dataclass
class _Answer:
    """What a handler answers; `cut` sends the response start and drops the connection."""

    status: int
    payload: Payload | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False
    silent: bool = False  # the client is gone: send nothing


@dataclass
class _Exchange:
    """One request being answered: what it asked, and what is learnt while answering it."""

    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    receive: Receive
    endpoint: str
    body_bytes: int = 0


@dataclass(frozen=True)
class Received:
    """One request the fake answered; status 0 means the connection was cut, not answered."""

    endpoint: str
    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    status: int
    body_bytes: int
    at: float


@dataclass
class FakeVideo:
    """A video on the fake channel; `session_id` is None for one seeded by add_existing_video."""

    id: str
    snippet: Payload
    status: Payload  # as sent at insert (privacyStatus, selfDeclaredMadeForKids, ...)
    size: int
    sha256: str | None
    session_id: str | None
    created_at: datetime
    upload_status: str = "uploaded"
    failure_reason: str | None = None
    rejection_reason: str | None = None
    polls: int = 0  # videos.list requests that asked about it

    @property
    def title(self) -> str:
        """snippet.title."""
        return str(self.snippet.get("title", ""))

    @property
    def description(self) -> str:
        """snippet.description."""
        return str(self.snippet.get("description", ""))

    @property
    def privacy_status(self) -> str:
        """status.privacyStatus."""
        return str(self.status.get("privacyStatus", "public"))

    def summary(self) -> Payload:
        """The JSON that GET /_fake/videos gives for this video."""
        return {
            "id": self.id,
            "title": self.title,
            "size": self.size,
            "sha256": self.sha256,
            "upload_status": self.upload_status,
            "privacy_status": self.privacy_status,
            "session_id": self.session_id,
        }


@dataclass
class UploadSession:
    """One resumable upload: its committed offset, a running hash of those bytes, its video."""

    id: str
    resource: Payload
    part: str
    total: int
    content_type: str
    created_at: datetime
    received: int = 0  # committed bytes, always a prefix of the file
    bytes_received: int = 0  # body bytes read by its chunk PUTs, discarded ones included
    chunks: int = 0  # chunks committed
    video_id: str | None = None
    response: Payload | None = None  # the completion answer, replayed to later PUTs
    expired_status: int | None = None
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)


class _Intake:
    """The new bytes of one chunk, hashed up to the last 256 KiB boundary as they arrive."""

    def __init__(self, session: UploadSession) -> None:
        self.start = session.received
        self.hashed = session.received  # absolute offset the hasher has reached
        self.hasher = session.hasher.copy()
        self.tail = bytearray()  # bytes past `hashed`, fewer than ALIGN after feed()

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        if self.tail:  # top the tail up to the next boundary first
            take = min(-(self.hashed + len(self.tail)) % ALIGN, len(view))
            self.tail += view[:take]
            view = view[take:]
            if (self.hashed + len(self.tail)) % ALIGN:
                return
            self.finish()
        # The common case (an aligned start, pieces of whole 256 KiB): hashed in place, no copy.
        end = self.hashed + len(view)
        aligned = end - end % ALIGN - self.hashed
        if aligned > 0:
            self.hasher.update(view[:aligned])
            self.hashed += aligned
            view = view[aligned:]
        self.tail += view

    def finish(self) -> None:
        self.hasher.update(self.tail)
        self.hashed += len(self.tail)
        self.tail.clear()


@dataclass(frozen=True)
class _Canned:
    """A knob that answers instead of the fake."""

    answer: _Answer


@dataclass(frozen=True)
class _Cut:
    """A knob that reads part of the next chunk, keeps some of it and drops the connection."""

    after_bytes: int
    commit_partial: bool


@dataclass(frozen=True)
class _AfterComplete:
    """A knob for the next completing chunk: stored, then 503 (status) or a cut (None)."""

    status: int | None


@dataclass(frozen=True)
class _Code:
    client_id: str | None
    redirect_uri: str | None
    code_challenge: str | None
    refresh_token: str | None


class FakeGoogle:
    """oauth2.googleapis.com/token and YouTube Data API v3 in one ASGI app; see the module doc."""

    def __init__(
        self,
        client_id: str = "fake-google-client-id",
        client_secret: str = "fake-google-client-secret",  # noqa: S107  # a test credential
        refresh_token: str = "fake-google-refresh-token",  # noqa: S107  # a test credential
        *,
        channel_title: str = "Fake Archive Channel",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.channel_title = channel_title
        self.channel_id = "UC" + secrets.token_urlsafe(16)[:22]
        # knobs that are plain attributes
        self.access_token_ttl_s = ACCESS_TOKEN_TTL_S
        self.unknown_session_status = 404
        self.processed_after_polls: int | None = None
        self.unverified_project = False
        self.force_ssl_scope = True  # False: captions.* answer 403 insufficientPermissions
        # records
        self.requests: list[Received] = []
        self.bytes_received = 0
        self.refreshes = 0
        self.quota_spent: dict[str, int] = {}
        # state
        self.clients: dict[str, str] = {}
        self.refresh_tokens: dict[str, str | None] = {}  # token -> its client (None: any)
        self.sessions: dict[str, UploadSession] = {}
        self.videos: dict[str, FakeVideo] = {}  # creation order
        self.deleted_videos: dict[str, FakeVideo] = {}  # removed by videos.delete
        self._access: dict[str, float] = {}  # access token -> monotonic expiry
        self._codes: dict[str, _Code] = {}
        self._playlists: dict[str, list[tuple[str, str]]] = {}  # id -> [(item id, video id)]
        self.thumbnails: dict[str, list[tuple[str, str, int]]] = {}  # video -> [(type, sha, size)]
        self.captions: dict[str, list[Payload]] = {}  # video -> caption resources (+ "body")
        self._clear_knobs()
        self._seed()

    def _clear_knobs(self) -> None:
        self._knobs: dict[str, deque[_Canned | _Cut]] = {e: deque() for e in API_ENDPOINTS}
        self._token_knobs: deque[_Canned] = deque()
        self._rotations: deque[str] = deque()
        self._after_complete: deque[_AfterComplete] = deque()
        self._rejections: deque[str] = deque()

    def _seed(self) -> None:
        self.add_client(self.client_id, self.client_secret)
        self.add_refresh_token(self.refresh_token)

    # -- OAuth state ---------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str) -> None:
        """An OAuth client the token endpoint knows."""
        self.clients[client_id] = client_secret

    def add_refresh_token(self, token: str, *, client_id: str | None = None) -> None:
        """A refresh token that is valid (for `client_id` only, when given)."""
        self.refresh_tokens[token] = client_id

    def revoke(self, token: str) -> None:
        """The refresh token (or access token) stops working: invalid_grant / authError."""
        self.refresh_tokens.pop(token, None)
        self._access.pop(token, None)

    def rotate_refresh_token_next(self, new_token: str) -> None:
        """The next successful refresh also answers `"refresh_token": new_token`, which replaces
        the one it was given (the old one becomes invalid)."""
        self._rotations.append(new_token)

    def add_authorization_code(
        self,
        code: str,
        *,
        redirect_uri: str | None = None,
        code_challenge: str | None = None,
        refresh_token: str | None = None,
        client_id: str | None = None,
    ) -> None:
        """A one-use code for grant_type=authorization_code. `code_challenge` is the PKCE S256
        challenge to check code_verifier against; the grant gives `refresh_token` (or a new one)."""
        self._codes[code] = _Code(client_id, redirect_uri, code_challenge, refresh_token)

    def issue_access_token(self) -> str:
        """A valid access token without a round trip to /token (for tests of the API alone)."""
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self._access[token] = time.monotonic() + self.access_token_ttl_s
        return token

    def expire_access_tokens(self) -> None:
        """Every access token issued so far becomes invalid (401 authError)."""
        self._access.clear()

    def fail_token_next(self, status: int, n: int = 1, *, error: str | None = None) -> None:
        """The next `n` token requests answer `status` with an OAuth error body."""
        error = error or {400: "invalid_request", 401: "invalid_client"}.get(
            status, "internal_failure"
        )
        payload = {"error": error, "error_description": "Injected by the fake."}
        for _ in range(n):
            self._token_knobs.append(_Canned(_Answer(status, payload)))

    # -- YouTube state -------------------------------------------------------------------------

    @property
    def uploads_playlist_id(self) -> str:
        """The channel's uploads playlist: its channel id with UC turned into UU."""
        return "UU" + self.channel_id[2:]

    def add_existing_video(
        self,
        title: str,
        description: str = "",
        *,
        tags: list[str] | None = None,
        privacy_status: str = "private",
        upload_status: str = "processed",
        video_id: str | None = None,
    ) -> FakeVideo:
        """A video already on the channel, not uploaded through a session (newest so far)."""
        snippet: Payload = {"title": title, "description": description, "categoryId": "20"}
        if tags:
            snippet["tags"] = list(tags)
        return self._add_video(
            video_id or self._video_id(),
            snippet,
            {"privacyStatus": privacy_status},
            size=0,
            sha256=None,
            session_id=None,
            upload_status=upload_status,
        )

    def add_playlist(self, playlist_id: str | None = None) -> str:
        """An empty playlist of the channel that playlistItems.insert can add to."""
        playlist_id = playlist_id or "PL" + secrets.token_urlsafe(24)[:32]
        self._playlists.setdefault(playlist_id, [])
        return playlist_id

    def playlist(self, playlist_id: str) -> list[str]:
        """Video ids in a playlist, in order (the uploads playlist: newest first)."""
        if playlist_id == self.uploads_playlist_id:
            return [v.id for v in self._newest_first()]
        return [video_id for _, video_id in self._playlists[playlist_id]]

    @property
    def playlists(self) -> dict[str, list[str]]:
        """Every playlist added with add_playlist and the video ids in it."""
        return {pid: self.playlist(pid) for pid in self._playlists}

    def set_processing(self, video_id: str, upload_status: str, reason: str | None = None) -> None:
        """What videos.list reports: uploaded, processed, failed (+ failureReason) or rejected
        (+ rejectionReason)."""
        if upload_status not in UPLOAD_STATUSES:
            raise ValueError(f"upload_status must be one of {sorted(UPLOAD_STATUSES)}")
        video = self.videos[video_id]
        video.upload_status = upload_status
        video.failure_reason = reason if upload_status == "failed" else None
        video.rejection_reason = reason if upload_status == "rejected" else None

    def reject_next_upload(self, reason: str = "duplicate") -> None:
        """The next completed upload answers its 200 as usual, then reports rejected."""
        self._rejections.append(reason)

    def uploaded(self) -> list[FakeVideo]:
        """Videos that came through an upload session, in creation order."""
        return [v for v in self.videos.values() if v.session_id is not None]

    # -- knobs ---------------------------------------------------------------------------------

    def answer_next(self, endpoint: str, reason: str, *, status: int | None = None) -> None:
        """The next request to `endpoint` answers YouTube's error for `reason`: quotaExceeded
        (403), uploadLimitExceeded (400), rateLimitExceeded (403), backendError (503), authError
        (401); `status` overrides the code (backendError 500, rateLimitExceeded 429)."""
        if reason not in KNOB_REASONS:
            raise ValueError(f"unknown reason {reason!r}; one of {sorted(KNOB_REASONS)}")
        self._queue(endpoint, _Canned(youtube_error(reason, status=status)))

    def fail_chunks(self, n: int, status: int = 503) -> None:
        """The next `n` chunk PUTs read their body, commit nothing and answer `status`."""
        reason = "backendError" if status >= 500 else "badRequest"
        for _ in range(n):
            self._queue("chunk", _Canned(youtube_error(reason, status=status)))

    def cut_next_chunk(self, after_bytes: int, *, commit_partial: bool = True) -> None:
        """The next chunk PUT reads `after_bytes` of its body, commits the part of them before
        the last 256 KiB boundary (if commit_partial), then drops the connection unanswered."""
        self._queue("chunk", _Cut(after_bytes, commit_partial))

    def complete_but_fail_response_next(self, *, cut: bool = False, status: int = 503) -> None:
        """The next completing chunk stores the video, then answers `status` (or, with cut=True,
        drops the connection): YouTube has the video, the client never saw the 200."""
        self._after_complete.append(_AfterComplete(None if cut else status))

    def expire_sessions(self, status: int = 404) -> None:
        """Every existing upload session answers `status` (404 or 410) from now on."""
        for session in self.sessions.values():
            session.expired_status = status

    def _queue(self, endpoint: str, knob: _Canned | _Cut) -> None:
        if endpoint not in API_ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(API_ENDPOINTS)}")
        self._knobs[endpoint].append(knob)

    # -- records -------------------------------------------------------------------------------

    def count(self, endpoint: str, status: int | None = None) -> int:
        """How many requests to `endpoint` were answered (with this status)."""
        return sum(
            1 for r in self.requests if r.endpoint == endpoint and status in (None, r.status)
        )

    def stats(self) -> Payload:
        """The counters GET /_fake/stats gives."""
        counts: dict[str, int] = {}
        for r in self.requests:
            counts[r.endpoint] = counts.get(r.endpoint, 0) + 1
        return {
            "bytes_received": self.bytes_received,
            "videos": len(self.videos),
            "uploaded": len(self.uploaded()),
            "sessions": len(self.sessions),
            "refreshes": self.refreshes,
            "requests": len(self.requests),
            "counts": counts,
            "quota_spent": dict(self.quota_spent),
        }

    def reset(self, *, all: bool = False) -> None:
        """No knobs and empty records; with all=True also no sessions, videos, playlists or
        tokens beyond the constructor's client and refresh token."""
        self._clear_knobs()
        self.requests.clear()
        self.bytes_received = 0
        self.refreshes = 0
        self.quota_spent.clear()
        self.access_token_ttl_s = ACCESS_TOKEN_TTL_S
        self.unknown_session_status = 404
        self.processed_after_polls = None
        self.unverified_project = False
        self.force_ssl_scope = True
        if all:
            self.thumbnails.clear()
            self.captions.clear()
            self.clients.clear()
            self.refresh_tokens.clear()
            self.sessions.clear()
            self.videos.clear()
            self.deleted_videos.clear()
            self._access.clear()
            self._codes.clear()
            self._playlists.clear()
            self._seed()

    # -- HTTP ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        at = time.monotonic()
        method, path = scope["method"], scope["path"]
        ex = _Exchange(
            method=method,
            path=path,
            params=parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True),
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            receive=receive,
            endpoint=self._endpoint_name(method, path),
        )
        answer = await self._dispatch(ex)
        status = 0 if answer.cut or answer.silent else answer.status
        self.requests.append(
            Received(ex.endpoint, method, path, ex.params, ex.headers, status, ex.body_bytes, at)
        )
        if 200 <= status < 300 and ex.endpoint in QUOTA_COSTS:
            cost = QUOTA_COSTS[ex.endpoint]
            self.quota_spent[ex.endpoint] = self.quota_spent.get(ex.endpoint, 0) + cost
        if not answer.silent:
            await self._send(send, answer)

    @staticmethod
    def _endpoint_name(method: str, path: str) -> str:
        return {
            ("POST", "/token"): "token",
            ("POST", UPLOAD_PATH): "insert",
            ("PUT", UPLOAD_PATH): "chunk",
            ("GET", "/youtube/v3/videos"): "videos.list",
            ("GET", "/youtube/v3/channels"): "channels.list",
            ("GET", "/youtube/v3/playlistItems"): "playlistItems.list",
            ("POST", "/youtube/v3/playlistItems"): "playlistItems.insert",
            ("DELETE", "/youtube/v3/videos"): "videos.delete",
            ("POST", THUMBNAIL_PATH): "thumbnails.set",
            ("GET", "/youtube/v3/captions"): "captions.list",
            ("POST", CAPTIONS_UPLOAD_PATH): "captions.insert",
            ("GET", "/_fake/videos"): "inspect",
            ("GET", "/_fake/stats"): "inspect",
        }.get((method, path), "unknown")

    async def _dispatch(self, ex: _Exchange) -> _Answer:
        if ex.endpoint in {"chunk", "thumbnails.set", "captions.insert"}:
            return await (self._put(ex) if ex.endpoint == "chunk" else self._extra(ex))
        if ex.endpoint in {"token", "insert", "playlistItems.insert"}:
            body = await self._read_small(ex)
            if body is None:
                return youtube_error("badRequest", "Request body too large.", 413)
        else:
            await self._drain(ex, None)
            body = b""
        if ex.endpoint == "unknown":
            return youtube_error("notFound", f"No fake route for {ex.method} {ex.path}.")
        if ex.endpoint == "inspect":
            if ex.path == "/_fake/stats":
                return _Answer(200, self.stats())
            return _Answer(200, {"videos": [v.summary() for v in self.videos.values()]})
        if ex.endpoint == "token":
            return self._token(body, ex.headers)
        knobs = self._knobs[ex.endpoint]
        knob = knobs.popleft() if knobs else None
        if isinstance(knob, _Canned):
            return knob.answer
        if not self._authorized(ex.headers):
            return youtube_error("authError")
        if ex.endpoint == "insert":
            return self._insert(ex.params, ex.headers, body)
        if ex.endpoint == "playlistItems.insert":
            return self._playlist_items_insert(body)
        lists = {
            "videos.list": self._videos_list,
            "channels.list": self._channels_list,
            "playlistItems.list": self._playlist_items_list,
            "videos.delete": self._videos_delete,
            "captions.list": self._captions_list,
        }
        return lists[ex.endpoint](ex.params)

    async def _send(self, send: Send, answer: _Answer) -> None:
        body = b"" if answer.payload is None else json.dumps(answer.payload).encode()
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                   for k, v in answer.headers.items()]  # fmt: skip
        if answer.payload is not None:
            headers.append((b"content-type", b"application/json; charset=UTF-8"))
        if answer.cut:
            # Promise a body, then return without it: uvicorn closes the connection, and the
            # client sees a transport error (reset or early EOF), never a usable answer.
            headers.append((b"content-length", b"1024"))
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _drain(self, ex: _Exchange, session: UploadSession | None) -> None:
        """Read and drop the body, so the client can send it all and read our answer."""
        more = True
        while more:
            message = await ex.receive()
            if message["type"] == "http.disconnect":
                return
            self._count(ex, session, len(message.get("body", b"")))
            more = message.get("more_body", False)

    async def _read_small(self, ex: _Exchange) -> bytes | None:
        parts: list[bytes] = []
        more = True
        while more:
            message = await ex.receive()
            if message["type"] == "http.disconnect":
                break
            body = message.get("body", b"")
            self._count(ex, None, len(body))
            if ex.body_bytes <= MAX_JSON_BYTES:
                parts.append(body)
            more = message.get("more_body", False)
        return None if ex.body_bytes > MAX_JSON_BYTES else b"".join(parts)

    def _count(self, ex: _Exchange, session: UploadSession | None, n: int) -> None:
        ex.body_bytes += n
        if ex.endpoint in {"chunk", "status"}:
            self.bytes_received += n
            if session is not None:
                session.bytes_received += n

    # -- OAuth ---------------------------------------------------------------------------------

    def _token(self, body: bytes, headers: dict[str, str]) -> _Answer:
        if self._token_knobs:
            return self._token_knobs.popleft().answer
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":  # requests-oauthlib sends the client this way
            try:
                pair = base64.b64decode(credentials).decode()
            except (binascii.Error, UnicodeDecodeError):
                pair = ""
            user, _, password = pair.partition(":")
            client_id, client_secret = unquote(user), unquote(password)
        if client_id not in self.clients:
            return self._oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if self.clients[client_id] != client_secret:
            return self._oauth_error(401, "invalid_client", "Unauthorized")
        grant = form.get("grant_type")
        if grant == "refresh_token":
            return self._refresh(client_id, form.get("refresh_token"))
        if grant == "authorization_code":
            return self._exchange_code(client_id, form)
        return self._oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    @staticmethod
    def _oauth_error(status: int, error: str, description: str) -> _Answer:
        return _Answer(status, {"error": error, "error_description": description})

    def _token_answer(self, refresh_token: str | None) -> _Answer:
        payload: Payload = {
            "access_token": self.issue_access_token(),
            "expires_in": self.access_token_ttl_s,
            "scope": SCOPE,
            "token_type": "Bearer",
        }
        if refresh_token is not None:
            payload["refresh_token"] = refresh_token
        return _Answer(200, payload, {"Cache-Control": "no-cache, no-store, max-age=0"})

    def _refresh(self, client_id: str, token: str | None) -> _Answer:
        if not token:
            return self._oauth_error(
                400, "invalid_request", "Missing required parameter: refresh_token"
            )
        if token not in self.refresh_tokens or self.refresh_tokens[token] not in (None, client_id):
            return self._oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        self.refreshes += 1
        new_token = self._rotations.popleft() if self._rotations else None
        if new_token is not None:
            self.refresh_tokens[new_token] = self.refresh_tokens.pop(token)
        return self._token_answer(new_token)

    def _exchange_code(self, client_id: str, form: dict[str, str]) -> _Answer:
        code = self._codes.get(form.get("code", ""))
        if code is None or code.client_id not in (None, client_id):
            return self._oauth_error(400, "invalid_grant", "Malformed auth code.")
        if code.redirect_uri is not None and form.get("redirect_uri") != code.redirect_uri:
            return self._oauth_error(400, "redirect_uri_mismatch", "Bad Request")
        if code.code_challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                return self._oauth_error(400, "invalid_grant", "Missing code verifier.")
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).decode().rstrip("=") != code.code_challenge:
                return self._oauth_error(400, "invalid_grant", "Invalid code verifier.")
        del self._codes[form["code"]]  # codes are good for one exchange
        refresh_token = code.refresh_token or "1//fake-" + secrets.token_urlsafe(32)
        self.refresh_tokens[refresh_token] = client_id
        return self._token_answer(refresh_token)

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expiry = self._access.get(token.strip()) if scheme.lower() == "bearer" else None
        return expiry is not None and expiry > time.monotonic()

    # -- uploads -------------------------------------------------------------------------------

    def _insert(
        self, params: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> _Answer:
        if params.get("uploadType") != ["resumable"]:
            return youtube_error("badRequest", "The fake speaks only uploadType=resumable.")
        part = params.get("part", [""])[0]
        if not part:
            return youtube_error("missingRequiredParameter", "Required parameter: part")
        try:
            resource = json.loads(body) if body else {}
        except ValueError:
            return youtube_error("parseError")
        if not isinstance(resource, dict):
            return youtube_error("parseError")
        length = headers.get("x-upload-content-length", "")
        if not length.isdigit() or int(length) == 0:
            return youtube_error("badRequest", "Invalid or missing X-Upload-Content-Length.")
        problem = self._check_metadata(resource)
        if problem is not None:
            return youtube_error(problem)
        session_id = "ABPt" + secrets.token_urlsafe(40)
        self.sessions[session_id] = UploadSession(
            id=session_id,
            resource=resource,
            part=part,
            total=int(length),
            content_type=headers.get("x-upload-content-type", "application/octet-stream"),
            created_at=datetime.now(UTC),
        )
        host = headers.get("host", "127.0.0.1")
        location = (
            f"http://{host}{UPLOAD_PATH}?uploadType=resumable&part={part}&upload_id={session_id}"
        )
        return _Answer(200, None, {"Location": location, "X-GUploader-UploadID": session_id})

    @staticmethod
    def _check_metadata(resource: Payload) -> str | None:
        snippet = resource.get("snippet")
        snippet = snippet if isinstance(snippet, dict) else {}
        title = snippet.get("title")
        if not isinstance(title, str) or not 1 <= len(title) <= TITLE_MAX_CHARS:
            return "invalidTitle"
        if "<" in title or ">" in title:
            return "invalidTitle"
        description = snippet.get("description", "")
        if not isinstance(description, str) or "<" in description or ">" in description:
            return "invalidDescription"
        if len(description.encode()) > DESCRIPTION_MAX_BYTES:
            return "invalidDescription"
        tags = snippet.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return "invalidTags"
        if tags_length(tags) > TAGS_MAX_CHARS or any("<" in t or ">" in t for t in tags):
            return "invalidTags"
        category = snippet.get("categoryId", "22")
        if not isinstance(category, str) or not category.isdigit():
            return "invalidCategoryId"
        return None

    async def _put(self, ex: _Exchange) -> _Answer:
        session = self.sessions.get(ex.params.get("upload_id", [""])[0])
        match = _CONTENT_RANGE.match(ex.headers.get("content-range", "").strip())
        declared = ex.headers.get("content-length", "")
        if (match and match.group(1) is None) or (match is None and declared in {"", "0"}):
            ex.endpoint = "status"  # a status query is not a chunk: no chunk knob fires
        if session is None or session.expired_status is not None:
            await self._drain(ex, session)
            status = self.unknown_session_status if session is None else session.expired_status
            return youtube_error("notFound", "The upload session was not found.", status)
        if ex.endpoint == "status" or session.response is not None:
            await self._drain(ex, session)
            if match and match.group(3) not in {"*", str(session.total)}:
                return youtube_error("badRequest", "Content-Range total does not match.")
            return self._progress(session)
        problem = self._check_range(session, match)
        if problem is not None:
            await self._drain(ex, session)
            return youtube_error("badRequest", problem)
        assert match is not None  # _check_range said so
        first, last = int(match.group(1)), int(match.group(2))
        knobs = self._knobs["chunk"]
        knob = knobs.popleft() if knobs else None
        if isinstance(knob, _Canned):
            await self._drain(ex, session)
            return knob.answer
        return await self._chunk(ex, session, (first, last), knob)

    @staticmethod
    def _check_range(session: UploadSession, match: re.Match[str] | None) -> str | None:
        if match is None:
            return "Missing or malformed Content-Range."
        first, last, total = int(match.group(1)), int(match.group(2)), match.group(3)
        if total not in {"*", str(session.total)}:
            return f"Content-Range total {total} is not X-Upload-Content-Length {session.total}."
        if first > last or last >= session.total:
            return "Content-Range is outside the upload."
        if first > session.received:
            return f"Content-Range starts at {first}, after the {session.received} bytes held."
        if last != session.total - 1 and (last - first + 1) % ALIGN:
            return "Every chunk but the last must be a multiple of 256 KiB."
        return None

    async def _chunk(
        self, ex: _Exchange, session: UploadSession, span: tuple[int, int], knob: _Cut | None
    ) -> _Answer:
        first, last = span
        length = last - first + 1
        skip = session.received - first  # bytes the session already holds: overlap is allowed
        limit = knob.after_bytes if knob is not None else None
        intake = _Intake(session)
        read, more, disconnected = 0, True, False
        while more:
            message: Message = await ex.receive()
            if message["type"] == "http.disconnect":
                disconnected = True
                break
            body: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if limit is not None and read + len(body) >= limit:
                body, more = body[: limit - read], False
            self._count(ex, session, len(body))
            low, high = max(skip - read, 0), min(length - read, len(body))
            if high > low:
                intake.feed(body if (low, high) == (0, len(body)) else memoryview(body)[low:high])
            read += len(body)
        arrived = read == length and not disconnected
        if knob is not None or disconnected:
            # A cut connection keeps what arrived, down to the last 256 KiB boundary (all of
            # it when the whole chunk arrived: a cut last chunk then still stores the video).
            if knob is None or knob.commit_partial:
                self._commit(session, intake, arrived=arrived)
            return _Answer(0, cut=not disconnected, silent=disconnected)
        if not arrived:
            return youtube_error("badRequest", f"Got {read} body bytes for {length} in range.")
        if not self._commit(session, intake, arrived=True):
            return self._progress(session)
        after = self._after_complete.popleft() if self._after_complete else None
        if after is not None:
            if after.status is None:
                return _Answer(0, cut=True)
            return youtube_error("backendError", status=after.status)
        return self._progress(session)

    def _commit(self, session: UploadSession, intake: _Intake, *, arrived: bool) -> bool:
        """Keep the chunk's bytes (only up to the last boundary unless all arrived); True when
        that completed the upload and stored the video."""
        if arrived:
            intake.finish()
        # Another PUT may have committed meanwhile (a client retrying over a dead connection);
        # this chunk's bytes then no longer follow the session's, so they are dropped.
        if intake.hashed > intake.start and session.received == intake.start:
            session.received = intake.hashed
            session.hasher = intake.hasher
            session.chunks += 1
            if session.received == session.total:
                self._complete(session)
                return True
        return False

    def _progress(self, session: UploadSession) -> _Answer:
        if session.response is not None:
            return _Answer(200, session.response)
        headers = {"X-GUploader-UploadID": session.id}
        if session.received:
            headers["Range"] = f"bytes=0-{session.received - 1}"
        return _Answer(308, None, headers)

    def _complete(self, session: UploadSession) -> None:
        snippet = session.resource.get("snippet", {})
        sent = session.resource.get("status")
        status: Payload = dict(sent) if isinstance(sent, dict) else {}
        status.setdefault("privacyStatus", "public")
        if self.unverified_project:  # Google locks such projects' uploads to private
            status["privacyStatus"] = "private"
        video = self._add_video(
            self._video_id(),
            dict(snippet),
            status,
            size=session.total,
            sha256=session.hasher.hexdigest(),
            session_id=session.id,
            upload_status="uploaded",
        )
        session.video_id = video.id
        session.response = self._video_resource(video, set(session.part.split(",")))
        if self._rejections:
            self.set_processing(video.id, "rejected", self._rejections.popleft())

    # -- the channel ---------------------------------------------------------------------------

    @staticmethod
    def _video_id() -> str:
        return secrets.token_urlsafe(8)  # 11 characters of [A-Za-z0-9_-], like YouTube's

    def _add_video(
        self,
        video_id: str,
        snippet: Payload,
        status: Payload,
        *,
        size: int,
        sha256: str | None,
        session_id: str | None,
        upload_status: str,
    ) -> FakeVideo:
        if video_id in self.videos:
            raise ValueError(f"video {video_id!r} already exists")
        video = FakeVideo(video_id, snippet, status, size, sha256, session_id,
                          datetime.now(UTC), upload_status)  # fmt: skip
        self.videos[video_id] = video
        return video

    def _newest_first(self) -> list[FakeVideo]:
        return list(reversed(self.videos.values()))

    def _video_resource(self, video: FakeVideo, parts: set[str]) -> Payload:
        item: Payload = {"kind": "youtube#video", "etag": self._etag(video.id), "id": video.id}
        if "snippet" in parts:
            snippet: Payload = {
                "publishedAt": google_time(video.created_at),
                "channelId": self.channel_id,
                "title": video.title,
                "description": video.description,
                "thumbnails": {
                    "default": {
                        "url": f"https://i.ytimg.com/vi/{video.id}/default.jpg",
                        "width": 120,
                        "height": 90,
                    }
                },
                "channelTitle": self.channel_title,
                "categoryId": video.snippet.get("categoryId", "22"),
                "liveBroadcastContent": "none",
                "localized": {"title": video.title, "description": video.description},
            }
            if video.snippet.get("tags"):
                snippet["tags"] = list(video.snippet["tags"])
            item["snippet"] = snippet
        if "status" in parts:
            status: Payload = {"uploadStatus": video.upload_status}
            if video.failure_reason is not None:
                status["failureReason"] = video.failure_reason
            if video.rejection_reason is not None:
                status["rejectionReason"] = video.rejection_reason
            status |= {"privacyStatus": video.privacy_status, "license": "youtube",
                       "embeddable": True, "publicStatsViewable": True}  # fmt: skip
            kids = bool(video.status.get("selfDeclaredMadeForKids", False))
            status |= {"madeForKids": kids, "selfDeclaredMadeForKids": kids}
            item["status"] = status
        if "processingDetails" in parts:
            details: Payload = {"processingStatus": _PROCESSING[video.upload_status]}
            if video.upload_status == "failed":
                details["processingFailureReason"] = "other"
            item["processingDetails"] = details
        return item

    @staticmethod
    def _etag(*parts: str) -> str:
        digest = hashlib.sha256("|".join(parts).encode()).digest()
        return base64.urlsafe_b64encode(digest).decode()[:27]

    def _videos_delete(self, params: dict[str, list[str]]) -> _Answer:
        """`videos.delete`: 204, and the video is gone from every listing; 404 if unknown."""
        ids = params.get("id", [])
        if len(ids) != 1 or not ids[0]:
            return youtube_error("missingRequiredParameter", "Required parameter: id")
        video = self.videos.pop(ids[0], None)
        if video is None:
            return youtube_error("videoNotFound", "The video could not be found.", 404)
        self.deleted_videos[ids[0]] = video
        return _Answer(204, None)

    def _videos_list(self, params: dict[str, list[str]]) -> _Answer:
        parts = {p for value in params.get("part", []) for p in value.split(",") if p}
        if not parts:
            return youtube_error("missingRequiredParameter", "Required parameter: part")
        ids = [i for value in params.get("id", []) for i in value.split(",") if i]
        if not ids:
            return youtube_error("missingRequiredParameter")
        if len(ids) > MAX_RESULTS:
            return youtube_error("badRequest", "At most 50 ids.")
        items = []
        for video_id in dict.fromkeys(ids):
            video = self.videos.get(video_id)
            if video is None:
                continue
            video.polls += 1
            after = self.processed_after_polls
            if after is not None and video.upload_status == "uploaded" and video.polls >= after:
                video.upload_status = "processed"
            items.append(self._video_resource(video, parts))
        return _Answer(200, {
            "kind": "youtube#videoListResponse",
            "etag": self._etag("videos", *ids),
            "items": items,
            "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
        })  # fmt: skip

    def _channels_list(self, params: dict[str, list[str]]) -> _Answer:
        parts = {p for value in params.get("part", []) for p in value.split(",") if p}
        if not parts:
            return youtube_error("missingRequiredParameter", "Required parameter: part")
        mine = params.get("mine", [""])[0] == "true"
        if not mine and not params.get("id"):
            return youtube_error("missingRequiredParameter")
        items: list[Payload] = []
        if mine or self.channel_id in ",".join(params.get("id", [])).split(","):
            channel: Payload = {"kind": "youtube#channel", "etag": self._etag(self.channel_id),
                                "id": self.channel_id}  # fmt: skip
            if "contentDetails" in parts:
                playlists = {"likes": "", "uploads": self.uploads_playlist_id}
                channel["contentDetails"] = {"relatedPlaylists": playlists}
            if "snippet" in parts:
                channel["snippet"] = {"title": self.channel_title, "description": ""}
            items.append(channel)
        return _Answer(200, {
            "kind": "youtube#channelListResponse",
            "etag": self._etag("channels"),
            "pageInfo": {"totalResults": len(items), "resultsPerPage": 5},
            "items": items,
        })  # fmt: skip

    def _playlist_items_list(self, params: dict[str, list[str]]) -> _Answer:
        playlist_id = params.get("playlistId", [""])[0]
        if not playlist_id:
            return youtube_error("missingRequiredParameter")
        raw = params.get("maxResults", ["5"])[0]
        if not raw.isdigit() or int(raw) > MAX_RESULTS:
            return youtube_error("badRequest", "maxResults must be 0 to 50.")
        size = int(raw)
        offset = 0
        if params.get("pageToken", [""])[0]:
            found = _page_offset(params["pageToken"][0])
            if found is None:
                return youtube_error("invalidPageToken")
            offset = found
        if playlist_id == self.uploads_playlist_id:
            entries = [(self._etag(playlist_id, v.id), v.id) for v in self._newest_first()]
        elif playlist_id in self._playlists:
            entries = self._playlists[playlist_id]
        else:
            return youtube_error("playlistNotFound")
        page = entries[offset : offset + size]
        payload: Payload = {
            "kind": "youtube#playlistItemListResponse",
            "etag": self._etag(playlist_id, str(offset)),
        }
        if offset + size < len(entries):
            payload["nextPageToken"] = _page_token(offset + size)
        if offset > 0:
            payload["prevPageToken"] = _page_token(max(0, offset - size))
        payload["items"] = [
            self._playlist_item(playlist_id, item_id, video_id, offset + i)
            for i, (item_id, video_id) in enumerate(page)
        ]
        payload["pageInfo"] = {"totalResults": len(entries), "resultsPerPage": size}
        return _Answer(200, payload)

    def _playlist_item(
        self, playlist_id: str, item_id: str, video_id: str, position: int
    ) -> Payload:
        video = self.videos[video_id]
        return {
            "kind": "youtube#playlistItem",
            "etag": self._etag(item_id, str(position)),
            "id": item_id,
            "snippet": {
                "publishedAt": google_time(video.created_at),
                "channelId": self.channel_id,
                "title": video.title,
                "description": video.description,
                "thumbnails": {},
                "channelTitle": self.channel_title,
                "playlistId": playlist_id,
                "position": position,
                "resourceId": {"kind": "youtube#video", "videoId": video_id},
                "videoOwnerChannelTitle": self.channel_title,
                "videoOwnerChannelId": self.channel_id,
            },
        }

    def _playlist_items_insert(self, body: bytes) -> _Answer:
        try:
            resource = json.loads(body)
        except ValueError:
            return youtube_error("parseError")
        snippet = resource.get("snippet") if isinstance(resource, dict) else None
        snippet = snippet if isinstance(snippet, dict) else {}
        playlist_id = snippet.get("playlistId")
        target = snippet.get("resourceId")
        video_id = target.get("videoId") if isinstance(target, dict) else None
        if not isinstance(playlist_id, str) or not isinstance(video_id, str):
            return youtube_error("badRequest", "snippet.playlistId and resourceId are required.")
        if playlist_id == self.uploads_playlist_id:
            return youtube_error("playlistOperationUnsupported")
        if playlist_id not in self._playlists:
            return youtube_error("playlistNotFound")
        if video_id not in self.videos:
            return youtube_error("videoNotFound")
        entries = self._playlists[playlist_id]
        position = snippet.get("position")
        if not isinstance(position, int) or not 0 <= position <= len(entries):
            position = len(entries)
        item_id = self._etag(playlist_id, video_id, secrets.token_hex(4))
        entries.insert(position, (item_id, video_id))
        return _Answer(200, self._playlist_item(playlist_id, item_id, video_id, position))

    # -- thumbnails and captions ---------------------------------------------------------------

    async def _extra(self, ex: _Exchange) -> _Answer:
        """thumbnails.set and captions.insert: the body read whole (up to its limit), checked."""
        limit = THUMBNAIL_MAX_BYTES if ex.endpoint == "thumbnails.set" else CAPTION_MAX_BYTES
        parts: list[bytes] = []
        more = True
        while more:
            message = await ex.receive()
            if message["type"] == "http.disconnect":
                break
            body = message.get("body", b"")
            self._count(ex, None, len(body))
            if ex.body_bytes <= limit:
                parts.append(body)
            more = message.get("more_body", False)
        knobs = self._knobs[ex.endpoint]
        knob = knobs.popleft() if knobs else None
        if isinstance(knob, _Canned):
            return knob.answer
        if not self._authorized(ex.headers):
            return youtube_error("authError")
        if ex.body_bytes > limit:
            return youtube_error("invalidImage" if limit == THUMBNAIL_MAX_BYTES else "badRequest",
                                 "The media is larger than the limit.")  # fmt: skip
        data = b"".join(parts)
        if ex.endpoint == "thumbnails.set":
            return self._thumbnail(ex, data)
        return self._caption_insert(ex, data)

    def _thumbnail(self, ex: _Exchange, data: bytes) -> _Answer:
        video_id = (ex.params.get("videoId") or [""])[0]
        if video_id not in self.videos:
            return youtube_error("videoNotFound")
        if not data:
            return youtube_error("mediaBodyRequired")
        kind = ex.headers.get("content-type", "").split(";")[0].strip().lower()
        magic = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}.get(kind)
        if magic is None or not data.startswith(magic):
            return youtube_error("invalidImage")
        self.thumbnails.setdefault(video_id, []).append(
            (kind, hashlib.sha256(data).hexdigest(), len(data))
        )
        url = f"https://i.ytimg.com/vi/{video_id}/default.jpg"
        return _Answer(
            200,
            {
                "kind": "youtube#thumbnailSetResponse",
                "etag": self._etag(video_id),
                "items": [{"default": {"url": url, "width": 120, "height": 90}}],
            },
        )

    def _caption_insert(self, ex: _Exchange, data: bytes) -> _Answer:
        if not self.force_ssl_scope:
            return youtube_error("insufficientPermissions")
        kind = ex.headers.get("content-type", "")
        match = re.search(r'boundary="?([^";]+)"?', kind)
        if not kind.startswith("multipart/related") or match is None:
            return youtube_error("badRequest", "Expected a multipart/related body.")
        boundary = b"--" + match.group(1).encode()
        sections = [s for s in data.split(boundary)[1:] if not s.startswith(b"--")]
        if len(sections) != 2:
            return youtube_error("contentRequired")
        bodies = [s.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") if b"\r\n\r\n" in s
                  else b"" for s in sections]  # fmt: skip
        try:
            resource = json.loads(bodies[0])
            snippet = resource["snippet"]
            video_id, name, language = snippet["videoId"], snippet["name"], snippet["language"]
        except (ValueError, KeyError, TypeError):
            return youtube_error("invalidMetadata")
        if video_id not in self.videos:
            return youtube_error("videoNotFound")
        track = bodies[1]
        if not track.strip():
            return youtube_error("contentRequired")
        text = track.lstrip()
        fmt = (
            "srv3"
            if text.startswith(b"<?xml") or text.startswith(b"<timedtext")
            else ("srt" if re.match(rb"\d+\r?\n\d\d:\d\d:\d\d,\d{3} --> ", text) else None)
        )
        if fmt is None:
            return youtube_error("invalidMetadata", "The caption track format is not recognised.")
        caption = {
            "kind": "youtube#caption", "etag": self._etag(video_id, name),
            "id": "AUieDa" + secrets.token_urlsafe(18),
            "snippet": {"videoId": video_id, "language": language, "name": name,
                        "trackKind": "standard", "isDraft": bool(snippet.get("isDraft", False)),
                        "status": "serving", "lastUpdated": google_time(datetime.now(UTC))},
        }  # fmt: skip
        self.captions.setdefault(video_id, []).append({**caption, "body": track, "format": fmt})
        return _Answer(200, caption)

    def _captions_list(self, params: dict[str, list[str]]) -> _Answer:
        if not self.force_ssl_scope:
            return youtube_error("insufficientPermissions")
        video_id = (params.get("videoId") or [""])[0]
        if video_id not in self.videos:
            return youtube_error("videoNotFound")
        items = [{k: v for k, v in c.items() if k not in ("body", "format")}
                 for c in self.captions.get(video_id, [])]  # fmt: skip
        return _Answer(
            200,
            {"kind": "youtube#captionListResponse", "etag": self._etag(video_id), "items": items},
        )


def main() -> None:
    """Serve the fake as a standalone process (for benchmarks and demos).

    python -m tests.fakes.youtube [--port N] [--client-id ID] [--client-secret S]
                                  [--refresh-token T]
    Prints the base URL as the first line, then GOOGLE_CLIENT_ID=..., GOOGLE_CLIENT_SECRET=...
    and GOOGLE_REFRESH_TOKEN=... lines, then serves until killed.
    """
    import argparse  # noqa: PLC0415 - only the standalone server needs these
    import socket  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", default="fake-google-client-id")
    parser.add_argument("--client-secret", default="fake-google-client-secret")
    parser.add_argument("--refresh-token", default="fake-google-refresh-token")
    args = parser.parse_args()
    fake = FakeGoogle(args.client_id, args.client_secret, args.refresh_token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)  # before the URL is printed: a client may connect at once
    print(f"http://127.0.0.1:{sock.getsockname()[1]}")
    print(f"GOOGLE_CLIENT_ID={fake.client_id}")
    print(f"GOOGLE_CLIENT_SECRET={fake.client_secret}")
    print(f"GOOGLE_REFRESH_TOKEN={fake.refresh_token}", flush=True)
    config = uvicorn.Config(fake, log_config=None, access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
