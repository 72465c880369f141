"""Twitch's thumbnail of a VOD, fetched for the extras stage (which sets it on YouTube).

The image is read as a stream and given up past `limit` bytes, so a wrong URL serving a large
file costs nothing; any HTTP failure or non-200 answer is None, and the stage then falls back to a
frame of the downloaded file.
"""

from __future__ import annotations

import httpx


class ThumbnailFetcher:
    """GETs a thumbnail over the daemon's Twitch HTTP client."""

    def __init__(self, http: httpx.AsyncClient, *, limit: int) -> None:
        self._http = http
        self._limit = limit

    async def fetch(self, url: str) -> bytes | None:
        """The image's bytes, or None (not 200, larger than the limit, or a transport error)."""
        try:
            async with self._http.stream("GET", url) as answer:
                if answer.status_code != 200:
                    return None
                data = b""
                async for piece in answer.aiter_bytes():
                    data += piece
                    if len(data) > self._limit:
                        return None
        except httpx.HTTPError:
            return None
        return data
