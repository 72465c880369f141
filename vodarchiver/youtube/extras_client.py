"""The YouTube calls of the extras stage: `thumbnails.set`, `captions.list`, `captions.insert`.

They extend the upload client (same token handling, same error translation). A thumbnail is the
raw image as the body (JPEG or PNG, at most 2 MB); a caption track is a `multipart/related` body:
the caption resource as JSON, then the track itself (SubRip here), which YouTube recognises from
its content. Both need more than the upload scope: thumbnails `youtube`, captions
`youtube.force-ssl` (without it Google answers 403 `insufficientPermissions`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from vodarchiver.errors import YouTubeUnavailable
from vodarchiver.youtube.client import YouTubeClient, raise_for

THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Caption:
    """One caption track YouTube holds for a video."""

    id: str
    name: str
    language: str


class ExtrasClient(YouTubeClient):
    """The upload client plus thumbnails and captions."""

    async def set_thumbnail(self, video_id: str, image: bytes, content_type: str) -> None:
        """`thumbnails.set`: the image becomes the video's thumbnail."""
        answer = await self._send(
            "POST", f"{self._api}/upload/youtube/v3/thumbnails/set", what="thumbnails.set",
            params={"videoId": video_id}, content=image, headers={"Content-Type": content_type},
        )  # fmt: skip
        raise_for(answer, what="thumbnails.set")

    async def captions(self, video_id: str) -> list[Caption]:
        """`captions.list`: the tracks the video already has."""
        body = await self._get_json("/youtube/v3/captions",
                                    {"part": "snippet", "videoId": video_id},
                                    what="captions.list")  # fmt: skip
        found = []
        for item in body.get("items") or []:
            snippet = item.get("snippet") if isinstance(item, dict) else None
            if isinstance(snippet, dict) and isinstance(item.get("id"), str):
                found.append(Caption(item["id"], str(snippet.get("name") or ""),
                                     str(snippet.get("language") or "")))  # fmt: skip
        return found

    async def insert_caption(self, video_id: str, *, name: str, language: str,
                             track: bytes) -> str:  # fmt: skip
        """`captions.insert` (multipart): the new track's id."""
        boundary = "vodarchiver" + secrets.token_hex(12)
        resource = {"snippet": {"videoId": video_id, "language": language, "name": name,
                                "isDraft": False}}  # fmt: skip
        body = b"".join([
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(resource).encode(),
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
            track,
            f"\r\n--{boundary}--\r\n".encode(),
        ])  # fmt: skip
        answer = await self._send(
            "POST", f"{self._api}/upload/youtube/v3/captions", what="captions.insert",
            params={"uploadType": "multipart", "part": "snippet"}, content=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        )  # fmt: skip
        raise_for(answer, what="captions.insert")
        try:
            return str(answer.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise YouTubeUnavailable("captions.insert: the answer has no caption id") from exc
