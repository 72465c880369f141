"""The Twitch GQL client (`POST <TWITCH_GQL_URL>/gql`): chat replay pages and chapters.

One request per call, no retries here: the replay stage decides pacing and backoff (a pure
decision in `pipeline/replay_rules.py`) and carries it out. Failures are translated at this
boundary: 429, 5xx, network errors, timeouts and non-JSON pages are `GqlUnavailable` (with
`Retry-After` when Twitch sends one); Twitch's refusals (the integrity check, `comments: null`,
`video: null`) and answers without the documented shape are `GqlRefused` with a reason.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from vodarchiver.errors import GqlRefused, GqlUnavailable
from vodarchiver.twitch.gql_models import (
    CommentsPage,
    VideoChapter,
    chapters_request,
    comments_request,
    parse_chapters,
    parse_comments,
)

MAX_BODY_BYTES = 4 * 2**20


class GqlClient:
    """Twitch's GQL endpoint, spoken as the web player does (a persisted query per call)."""

    def __init__(
        self, http: httpx.AsyncClient, *, url: str, client_id: str, timeout_s: float = 10.0
    ) -> None:
        self._http = http
        self._url = url.rstrip("/") + "/gql"
        self._headers = {"Client-ID": client_id, "Content-Type": "application/json"}
        self._timeout_s = timeout_s

    async def comments(
        self, video_id: str, *, offset_s: int | None = None, cursor: str | None = None
    ) -> CommentsPage:
        """One page of chat replay, from an offset (seconds) or after a cursor."""
        body = await self._post(comments_request(video_id, offset_s=offset_s, cursor=cursor))
        return parse_comments(body)

    async def chapters(self, video_id: str) -> tuple[VideoChapter, ...]:
        """The VOD's chapters (games played), in order."""
        return parse_chapters(await self._post(chapters_request(video_id)))

    async def _post(self, operation: dict[str, Any]) -> object:
        content = json.dumps(operation, separators=(",", ":")).encode()
        try:
            # The whole exchange, not each read: a server trickling bytes cannot hold us longer.
            async with asyncio.timeout(self._timeout_s):
                response = await self._http.post(self._url, content=content, headers=self._headers)
        except (httpx.TransportError, TimeoutError) as exc:
            raise GqlUnavailable(f"Twitch GQL unreachable: {exc.__class__.__name__}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise GqlUnavailable(
                f"Twitch GQL answered {status}", status=status,
                retry_after_s=_retry_after(response.headers.get("retry-after")),
            )  # fmt: skip
        if len(response.content) > MAX_BODY_BYTES:
            raise GqlRefused("malformed", "Twitch GQL answer larger than 4 MiB")
        if status != 200:
            raise GqlRefused("malformed", f"Twitch GQL refused the request: HTTP {status}")
        try:
            return json.loads(response.content)
        except ValueError as exc:
            # An HTML page from a proxy in front of GQL says nothing about the VOD: try later.
            raise GqlUnavailable("Twitch GQL answered something that is not JSON") from exc


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None
