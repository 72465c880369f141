"""Frozen records and state enums shared by every layer. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from vodarchiver.lifecycle import StatusCategory, VodState

# The lifecycle owns the states; they stay importable from here.
__all__ = ["StatusCategory", "VodState"]


@dataclass(frozen=True)
class CheckResult:
    """One readiness check's verdict and a human-readable detail (never a secret)."""

    ok: bool
    detail: str


class DownloadState(enum.StrEnum):
    """The download stage's own state in `vods.download_state`: an enum, not a progress line."""

    PENDING = "pending"
    WAITING_FOR_DISK = "waiting_for_disk"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_PERMANENT = "failed_permanent"
    CANCELED = "canceled"
    GONE = "gone"
    SKIPPED_RESTRICTED = "skipped_restricted"


@dataclass(frozen=True)
class ChannelRecord:
    """What we keep about a channel between passes (the login-to-id cache)."""

    login: str
    user_id: str
    display_name: str
    broadcaster_type: str


@dataclass(frozen=True)
class Claim:
    """A channel taken for one discovery pass, with what the previous passes left."""

    watermark_at: datetime | None  # the listing is known to be read without gaps down to here
    full_read_at: datetime | None
    verified_at: datetime | None


@dataclass(frozen=True)
class PassResult:
    """What a discovery pass over one channel records when it ends."""

    watermark_at: datetime | None
    full_read: bool
    verified: bool
    error: str | None


# A VOD becomes gone only when Helix confirms it missing twice, at least this far apart.
GONE_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class VodUpsert:
    """One VOD as discovery writes it. `live` is None when liveness could not be determined."""

    id: str
    channel: str
    stream_id: str | None
    title: str
    description: str
    created_at: datetime
    published_at: datetime | None
    duration_s: int
    url: str
    thumbnail_url: str
    viewable: str
    muted_segments: list[dict[str, Any]]
    retention_days: int
    expires_at: datetime
    live: bool | None


@dataclass(frozen=True)
class DownloadClaim:
    """A VOD taken by a download worker."""

    row_id: int
    vod_id: str
    channel: str
    url: str | None
    duration_s: int | None
    failed_attempts: int
    corr: str
    title: str
    discard_files: bool = False  # a reprocess: an earlier generation's files go first


@dataclass(frozen=True)
class DownloadResult:
    """How a download attempt ended, as the VOD row records it."""

    state: VodState
    download_state: DownloadState
    failed: int  # 1 when the attempt counts against DOWNLOAD_MAX_ATTEMPTS
    next_attempt_at: datetime | None = None
    error: str | None = None
    file_path: Path | None = None
    file_size: int | None = None


@dataclass(frozen=True)
class UploadClaim:
    """A downloaded VOD taken by an upload worker."""

    row_id: int
    vod_id: str
    channel: str
    title: str
    created_at: datetime | None  # Helix's created_at: the broadcast's date
    url: str
    duration_s: int
    muted_segments: list[dict[str, Any]]
    file_path: Path
    failed_attempts: int
    corr: str
    discovered_at: datetime
    generation: int = 1
    delete_old_videos: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UploadClaim:
        """From `upload_claim`'s RETURNING row."""
        muted = row.get("muted_segments")
        return cls(
            row_id=int(row["id"]), vod_id=str(row["twitch_vod_id"]), channel=str(row["channel"]),
            title=str(row["title"] or ""), created_at=row["date"], url=str(row["url"] or ""),
            duration_s=int(row["duration_s"] or 0),
            muted_segments=list(muted) if isinstance(muted, list) else [],
            file_path=Path(str(row["file_path"])), failed_attempts=int(row["upload_attempts"]),
            corr=str(row["corr"]), discovered_at=row["created_at"],
            generation=int(row.get("generation") or 1),
            delete_old_videos=bool(row.get("delete_old_videos")),
        )  # fmt: skip


@dataclass(frozen=True)
class UploadPart:
    """One part of a VOD on its way to YouTube, as `youtube_uploads` records it."""

    part: int
    parts: int
    file_path: str
    file_size: int
    fingerprint: str
    start_s: float
    duration_s: float | None
    marker: str
    session_uri: str | None = None
    sessions_started: int = 0
    bytes_confirmed: int = 0
    video_id: str | None = None
    upload_status: str | None = None
    playlist_added: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UploadPart:
        """From an `upload_parts` row."""
        return cls(
            part=int(row["part"]), parts=int(row["parts"]), file_path=str(row["file_path"]),
            file_size=int(row["file_size"]), fingerprint=str(row["fingerprint"]),
            start_s=float(row["start_s"]),
            duration_s=float(row["duration_s"]) if row["duration_s"] is not None else None,
            marker=str(row["marker"]), session_uri=row["session_uri"],
            sessions_started=int(row["sessions_started"]),
            bytes_confirmed=int(row["bytes_confirmed"]), video_id=row["video_id"],
            upload_status=row["upload_status"], playlist_added=bool(row["playlist_added"]),
        )  # fmt: skip
