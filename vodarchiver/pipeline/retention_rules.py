"""Which local VOD directories may go, and why: pure decisions over plain values and `now`.

Only a VOD in a terminal state ever loses its files: `uploaded` (after RETENTION_KEEP_DAYS, or
the oldest first while RETENTION_MAX_GB is exceeded), and failed for good, canceled, skipped or
gone (after RETENTION_FAILED_DAYS, counted from when it entered that state). Every other state
(queued with fragments, downloading, downloaded, waiting, uploading, failed_retryable, ...) is
still needed and is never touched. Nor is a VOD a worker holds a lease on, or one that entered
its state less than SETTLE ago: a cancel or skip clears the claim at once, and another replica's
worker only notices at its next heartbeat (the downloader waits at most two minutes for the
directory's lock for the same reason). A directory no VOD row owns is an orphan and goes after a
grace period, but only when the database knows at least one VOD: an empty database pointed at an
old DATA_DIR (a mistake, a restore) must not wipe an archive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

UPLOADED = "uploaded"
# Terminal states whose files are kept RETENTION_FAILED_DAYS, then removed.
FAILED_STATES = frozenset({"failed_permanent", "canceled", "skipped", "skipped_restricted", "gone"})
ORPHAN_GRACE = timedelta(hours=1)
# Longer than a lease and the downloader's wait for the directory lock (media/downloader.py).
SETTLE = timedelta(seconds=120)
# DATA_DIR/<channel>/<vod id>: a channel is a Twitch login; `postgres` is the embedded database.
CHANNEL_DIR = re.compile(r"^[a-z0-9_]{1,25}$")
RESERVED_DIRS = frozenset({"postgres"})
VOD_DIR = re.compile(r"^\d{1,20}$")


@dataclass(frozen=True)
class RetentionPolicy:
    """RETENTION_KEEP_DAYS, RETENTION_MAX_GB, RETENTION_FAILED_DAYS (None: keep forever/no cap)."""

    keep_days: float | None
    max_bytes: int | None
    failed_days: float | None
    orphan_grace: timedelta = ORPHAN_GRACE


@dataclass(frozen=True)
class VodDir:
    """A directory DATA_DIR/<channel>/<vod id> as found on disk."""

    channel: str
    vod_id: str
    size: int
    newest: datetime  # the newest modification time inside it


@dataclass(frozen=True)
class VodFacts:
    """What the database says of the VOD that owns a directory."""

    vod_id: str
    state: str
    state_changed_at: datetime
    uploaded_at: datetime | None
    processed: bool
    claim_until: datetime | None = None  # a worker's lease, while it holds the VOD

    def leased(self, now: datetime) -> bool:
        """Whether a worker holds the VOD now."""
        return self.claim_until is not None and self.claim_until > now


@dataclass(frozen=True)
class Removal:
    """A directory to remove, the state it was decided on (None: an orphan) and why."""

    dir: VodDir
    state: str | None
    reason: str


def is_vod_dir(channel: str, name: str, *, known: bool) -> bool:
    """Whether DATA_DIR/<channel>/<name> may be a VOD directory at all."""
    if channel in RESERVED_DIRS or not CHANNEL_DIR.match(channel):
        return False
    return known or bool(VOD_DIR.match(name))


def _days(days: float) -> timedelta:
    return timedelta(days=days)


def decide(
    dirs: Sequence[VodDir],
    vods: Mapping[str, VodFacts],
    policy: RetentionPolicy,
    now: datetime,
    *,
    database_has_vods: bool,
) -> list[Removal]:
    """Every removal the policy asks for now, in the order to carry them out."""
    removals: list[Removal] = []
    kept_uploaded: list[tuple[datetime, VodDir]] = []
    for d in dirs:
        vod = vods.get(d.vod_id)
        if vod is None:
            if (
                database_has_vods
                and VOD_DIR.match(d.vod_id)
                and now - d.newest >= policy.orphan_grace
            ):
                removals.append(Removal(d, None, "no VOD in the database owns it"))
            continue
        if vod.leased(now):
            continue
        if vod.state == UPLOADED and vod.processed:
            done_at = vod.uploaded_at or vod.state_changed_at
            keep = policy.keep_days
            # 0 means once confirmed, whatever the clocks of this host and PostgreSQL say.
            if keep is not None and (keep == 0 or now >= done_at + _days(keep)):
                why = ("uploaded" if policy.keep_days == 0
                       else f"uploaded more than {policy.keep_days:g} days ago")  # fmt: skip
                removals.append(Removal(d, vod.state, why))
            else:
                kept_uploaded.append((done_at, d))
        elif (
            vod.state in FAILED_STATES
            and policy.failed_days is not None
            and now >= vod.state_changed_at + max(_days(policy.failed_days), SETTLE)
        ):
            why = f"{vod.state} for more than {policy.failed_days:g} days"
            removals.append(Removal(d, vod.state, why))
    if policy.max_bytes is not None:
        total = sum(d.size for d in dirs) - sum(r.dir.size for r in removals)
        for _, d in sorted(kept_uploaded, key=lambda pair: pair[0]):
            if total <= policy.max_bytes:
                break
            removals.append(Removal(d, UPLOADED, "oldest uploaded while over RETENTION_MAX_GB"))
            total -= d.size
    return removals


# --- settings -------------------------------------------------------------------------------


def parse_days(raw: str) -> float | None:
    """A number of days, 0 or more; empty or `never`: None (keep forever)."""
    raw = raw.strip()
    if not raw or raw.lower() == "never":
        return None
    try:
        days = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number of days") from None
    if not 0 <= days <= 36500:
        raise ValueError(f"{raw!r} must be between 0 and 36500 days")
    return days


def parse_max_gb(raw: str) -> float | None:
    """A size in GB (GiB), more than 0; empty: None (no cap)."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        gb = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number of GB") from None
    if not gb > 0:
        raise ValueError(f"{raw!r} must be more than 0 (empty: no cap)")
    return gb


def effective_keep_days(keep_days: float | None, delete_after_upload: bool) -> float | None:
    """RETENTION_KEEP_DAYS; when unset, the older DELETE_AFTER_UPLOAD decides (1: 0 days)."""
    if keep_days is not None:
        return keep_days
    return 0.0 if delete_after_upload else None
