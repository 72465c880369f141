"""The YouTube Data API v3 over httpx: the resumable upload, videos, playlists, the uploads list.

Everything is async and speaks the protocol directly (google-api-python-client is synchronous and
its retries resent empty bodies after a 5xx on these machines). The base URL is YOUTUBE_API_URL.
The resumable protocol, as Google documents it:
- `POST /upload/youtube/v3/videos?uploadType=resumable` with the video resource opens a session;
  its URI (in `Location`) is the upload's identity and is all a resume needs.
- `PUT <session>` with `Content-Range: bytes first-last/total` sends a chunk; every chunk but the
  last is a multiple of 256 KiB. `308` means incomplete, with `Range: bytes=0-<last held>` (no
  Range when YouTube holds nothing); `200`/`201` carries the video.
- `PUT <session>` with `Content-Range: bytes */total` and no body asks how much YouTube holds.
- `404`/`410` on a session: it expired.
Errors are translated here into the tree in errors.py; the caller decides what they mean.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from vodarchiver.errors import (
    QuotaExhausted,
    UploadLimitReached,
    UploadSessionExpired,
    YouTubeRequestError,
    YouTubeUnavailable,
)

CHUNK_ALIGN = 256 * 1024
READ_PIECE = 4 * 2**20  # bytes read from disk at a time while a chunk streams out
_RANGE = re.compile(r"bytes=0-(\d+)")
_RETRYABLE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "backendError",
                      "internalError", "processingFailure"}  # fmt: skip
MAX_ANSWER_BYTES = 4 * 2**20


class AccessTokens(Protocol):
    """Where the client gets a bearer token (GoogleAuth in production)."""

    async def access_token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


@dataclass(frozen=True)
class SessionStatus:
    """What YouTube holds of an upload: `offset` bytes, and the video once it is complete."""

    offset: int
    video: dict[str, Any] | None = None


def error_reason(answer: httpx.Response) -> tuple[str, str]:
    """(reason, message) of a Google error answer; ('', text) when it has another shape."""
    try:
        body = answer.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            items = error.get("errors") or [{}]
            first = items[0] if isinstance(items, list) and items else {}
            reason = str(first.get("reason") or error.get("status") or "")
            return reason, str(error.get("message") or "")[:300]
        if isinstance(error, str):
            return error, str(body.get("error_description") or "")[:300]
    except ValueError:
        pass
    return "", answer.text[:200].strip()


def raise_for(answer: httpx.Response, *, what: str) -> None:
    """Translate an error answer (anything but 2xx and 308) into our exception tree."""
    status = answer.status_code
    if status < 300 or status == 308:
        return
    reason, message = error_reason(answer)
    detail = f"{what}: HTTP {status}" + (f" {reason}" if reason else "") + (
        f": {message}" if message else "")  # fmt: skip
    if reason == "quotaExceeded" or (status == 403 and reason == "dailyLimitExceeded"):
        raise QuotaExhausted(detail)
    if reason == "uploadLimitExceeded":
        raise UploadLimitReached(detail)
    if status >= 500 or status in (408, 429) or reason in _RETRYABLE_REASONS:
        raise YouTubeUnavailable(detail)
    raise YouTubeRequestError(status, reason, detail)


def held_offset(answer: httpx.Response) -> int:
    """Bytes YouTube holds, from a 308's Range header (none: nothing arrived)."""
    match = _RANGE.fullmatch(answer.headers.get("range", "").strip())
    return int(match.group(1)) + 1 if match else 0


async def _file_range(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes start..end-1 of a file, a piece at a time: memory does not grow with the chunk."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
    try:
        pos = start
        while pos < end:
            piece = await asyncio.to_thread(os.pread, fd, min(READ_PIECE, end - pos), pos)
            if not piece:
                raise YouTubeUnavailable(f"{path.name} ended at byte {pos}, expected {end}")
            pos += len(piece)
            yield piece
    finally:
        os.close(fd)


class YouTubeClient:
    """The calls the upload stage makes; each raises only the errors of errors.py."""

    def __init__(self, http: httpx.AsyncClient, tokens: AccessTokens, *, api_url: str) -> None:
        self._http = http
        self._tokens = tokens
        self._api = api_url.rstrip("/")

    async def _send(
        self, method: str, url: str, *, what: str, retry_401: bool = True,
        headers: dict[str, str] | None = None, **kwargs: Any,
    ) -> httpx.Response:  # fmt: skip
        """One authorised request; a 401 gets a fresh access token and exactly one retry.

        A request whose body is a stream cannot be sent twice (`retry_401=False`): its 401 drops
        the token and raises YouTubeUnavailable, and the upload resumes from what YouTube holds.
        """
        for _ in range(2 if retry_401 else 1):
            token = await self._tokens.access_token()
            try:
                answer = await self._http.request(
                    method, url, headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                    **kwargs,
                )  # fmt: skip
            except httpx.HTTPError as exc:
                raise YouTubeUnavailable(f"{what}: {exc.__class__.__name__}") from exc
            if answer.status_code != 401:
                return answer
            self._tokens.invalidate(token)
        raise YouTubeUnavailable(f"{what}: HTTP 401, the access token was refused")

    async def create_session(self, resource: dict[str, Any], size: int) -> str:
        """Open a resumable session for `size` bytes; its URI."""
        answer = await self._send(
            "POST", f"{self._api}/upload/youtube/v3/videos",
            what="videos.insert",
            params={"uploadType": "resumable", "part": "snippet,status"},
            json=resource,
            headers={"X-Upload-Content-Length": str(size), "X-Upload-Content-Type": "video/*"},
        )  # fmt: skip
        raise_for(answer, what="videos.insert")
        location = str(answer.headers.get("location", ""))
        if not location.startswith(("http://", "https://")):
            raise YouTubeUnavailable("videos.insert: the answer has no session URI (Location)")
        return location

    async def query(self, session_uri: str, total: int) -> SessionStatus:
        """How much of the upload YouTube holds (or the video, when it is complete)."""
        answer = await self._send("PUT", session_uri, what="upload", headers={
            "Content-Length": "0", "Content-Range": f"bytes */{total}"})  # fmt: skip
        return self._status(answer, what="upload status query")

    async def put_chunk(self, session_uri: str, path: Path, start: int, end: int, total: int) -> \
            SessionStatus:  # fmt: skip
        """Send bytes start..end-1 of `path`; what YouTube holds afterwards."""
        headers = {"Content-Length": str(end - start),
                   "Content-Range": f"bytes {start}-{end - 1}/{total}",
                   "Content-Type": "application/octet-stream"}  # fmt: skip
        body = _file_range(path, start, end)
        answer = await self._send("PUT", session_uri, what="upload", headers=headers,
                                  retry_401=False, content=body)  # fmt: skip
        return self._status(answer, what="upload chunk")

    def _status(self, answer: httpx.Response, *, what: str) -> SessionStatus:
        if answer.status_code in (404, 410):
            raise UploadSessionExpired(f"{what}: HTTP {answer.status_code}, the session expired")
        if answer.status_code == 308:
            return SessionStatus(held_offset(answer))
        raise_for(answer, what=what)
        try:
            video = answer.json()
        except ValueError as exc:
            raise YouTubeUnavailable(f"{what}: the final answer is not JSON") from exc
        if not isinstance(video, dict) or not isinstance(video.get("id"), str):
            raise YouTubeUnavailable(f"{what}: the final answer carries no video id")
        return SessionStatus(-1, video)

    async def _get_json(self, path: str, params: dict[str, Any], *, what: str) -> dict[str, Any]:
        answer = await self._send("GET", f"{self._api}{path}", what=what, params=params)
        raise_for(answer, what=what)
        if len(answer.content) > MAX_ANSWER_BYTES:
            raise YouTubeUnavailable(f"{what}: answer larger than {MAX_ANSWER_BYTES} bytes")
        try:
            body = answer.json()
        except ValueError as exc:
            raise YouTubeUnavailable(f"{what}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise YouTubeUnavailable(f"{what}: the answer is not a JSON object")
        return body

    async def video_statuses(self, video_ids: list[str]) -> dict[str, dict[str, Any]]:
        """`videos.list` status of up to 50 videos: {id: status}; unknown ids are absent."""
        body = await self._get_json(
            "/youtube/v3/videos",
            {"part": "status,processingDetails", "id": ",".join(video_ids)},
            what="videos.list",
        )
        found = {}
        for item in body.get("items") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                found[item["id"]] = dict(item.get("status") or {})
        return found

    async def uploads_playlist(self) -> str:
        """The channel's uploads playlist id (`channels.list mine=true`)."""
        body = await self._get_json(
            "/youtube/v3/channels", {"part": "contentDetails", "mine": "true"},
            what="channels.list",
        )  # fmt: skip
        try:
            return str(body["items"][0]["contentDetails"]["relatedPlaylists"]["uploads"])
        except (KeyError, IndexError, TypeError) as exc:
            raise YouTubeRequestError(
                200, "noChannel", "channels.list: the account has no YouTube channel"
            ) from exc

    async def uploads_page(
        self, playlist_id: str, page_token: str | None
    ) -> tuple[list[tuple[str, str]], str | None]:
        """One page of the uploads list: [(video id, description)], and the next page's token."""
        params = {"part": "snippet", "playlistId": playlist_id, "maxResults": 50}
        if page_token:
            params["pageToken"] = page_token
        body = await self._get_json("/youtube/v3/playlistItems", params,
                                    what="playlistItems.list")  # fmt: skip
        items = []
        for item in body.get("items") or []:
            snippet = item.get("snippet") if isinstance(item, dict) else None
            if not isinstance(snippet, dict):
                continue
            video_id = (snippet.get("resourceId") or {}).get("videoId")
            if isinstance(video_id, str):
                items.append((video_id, str(snippet.get("description") or "")))
        token = body.get("nextPageToken")
        return items, token if isinstance(token, str) and token else None

    async def video_delete(self, video_id: str) -> None:
        """Delete a video (`videos.delete`); a video already gone counts as deleted."""
        answer = await self._send("DELETE", f"{self._api}/youtube/v3/videos",
                                  what="videos.delete", params={"id": video_id})  # fmt: skip
        if answer.status_code == 404:
            return
        raise_for(answer, what="videos.delete")

    async def playlist_add(self, playlist_id: str, video_id: str) -> None:
        """Add a video to a playlist (`playlistItems.insert`)."""
        answer = await self._send(
            "POST", f"{self._api}/youtube/v3/playlistItems", what="playlistItems.insert",
            params={"part": "snippet"},
            json={"snippet": {"playlistId": playlist_id,
                              "resourceId": {"kind": "youtube#video", "videoId": video_id}}},
        )  # fmt: skip
        raise_for(answer, what="playlistItems.insert")
