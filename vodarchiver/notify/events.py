"""What the operator is told: the events, their settings, and how each reads (pure, no I/O).

An event is a row of the `notifications` outbox: a name, the Twitch id of its VOD if any, and
a payload of facts captured when it happened (the VOD's title and channel, a reason, a time).
`render` turns one into a short title and a body that always ends with the next step for the
operator; `delivery_delay` is the retry decision of a failed delivery; the `*_due` functions
decide the periodic conditions the checker raises.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from vodarchiver.values import Secret, http_url, positive_duration


class Event(enum.StrEnum):
    """Every event name (`NOTIFY_EVENTS` takes these)."""

    PUBLISHED = "published"
    FAILED = "failed"
    AT_RISK = "at_risk"
    GONE_UNARCHIVED = "gone_unarchived"
    AUTH_NEEDED = "auth_needed"
    TOKEN_EXPIRING = "token_expiring"  # noqa: S105 - an event name, not a password
    TWITCH_AUTH_FAILED = "twitch_auth_failed"
    CIRCUIT_OPEN = "circuit_open"
    CIRCUIT_CLOSED = "circuit_closed"
    QUOTA_EXHAUSTED = "quota_exhausted"
    DISK_LOW = "disk_low"
    CHAT_OVERDUE = "chat_overdue"


DEFAULT_EVENTS = "all,-published"


def parse_events(raw: str) -> frozenset[Event]:
    """`NOTIFY_EVENTS`: names, `all`, and `-name` to leave one out (`all,-published`)."""
    chosen: set[Event] = set()
    for item in (part.strip().lower() for part in raw.split(",")):
        if not item:
            continue
        drop = item.startswith("-")
        name = item.removeprefix("-")
        if name == "all":
            group = set(Event)
        elif name in Event.__members__.values():
            group = {Event(name)}
        else:
            known = ", ".join(e.value for e in Event)
            raise ValueError(f"unknown event {name!r} (known: all, {known})")
        chosen = chosen - group if drop else chosen | group
    return frozenset(chosen)


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)


def split_urls(raw: str) -> list[str]:
    """The Apprise URLs of `NOTIFY_URLS`: separated by spaces, commas or new lines."""
    return [u for u in re.split(r"[\s,]+", raw) if u]


def parse_notify_urls(raw: str) -> Secret:
    """`NOTIFY_URLS`, checked for shape; kept whole as a Secret (URLs often carry tokens)."""
    for n, url in enumerate(split_urls(raw), start=1):
        if not _SCHEME.match(url):
            # Never echo the value: it may be a webhook token pasted on its own.
            raise ValueError(f"entry {n} is not an Apprise URL (scheme://...)")
    return Secret(raw)


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be credentials, to scrub from every log line and error."""
    found = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    found += [p for p in (parts.username, parts.password) if p]
    found += [unquote(s) for s in parts.path.split("/") if len(s) >= 6]
    found += [v for _, v in parse_qsl(parts.query) if len(v) >= 6]
    if parts.hostname and not re.fullmatch(r"[\d.]+|localhost|[\w.-]+\.\w+", parts.hostname):
        found.append(parts.hostname)  # discord://<id>/<token> style: the "host" is an id
    return found


def target_id(url: str) -> str:
    """A stable name of a target that reveals nothing of it (delivered_to, /status)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def describe_target(url: str) -> str:
    """What a person may see of a target: its scheme and a digest (`json:3fa1c2...`)."""
    scheme = url.split("://", 1)[0].lower()
    return f"{scheme}:{target_id(url)}"


# --- rendering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """What a target receives: a title, a body, and Apprise's notification type."""

    title: str
    body: str
    kind: str  # info | success | warning | failure


def console_link(base: str, vod_id: str | None) -> str:
    """The console page of a VOD, or the status page for events not about one VOD."""
    base = base.rstrip("/")
    return f"{base}/ui/vods/{vod_id}" if vod_id else f"{base}/status"


def _when(raw: Any) -> str:
    if not raw:
        return "unknown"
    try:
        return datetime.fromisoformat(str(raw)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(raw)


def render(
    event: Event, vod_id: str | None, payload: Mapping[str, Any], *, console_url: str
) -> Message:
    """The title and body of one event; the body ends with the operator's next step."""
    title = str(payload.get("title") or "(untitled)")
    channel = str(payload.get("channel") or "?")
    reason = str(payload.get("reason") or "no reason recorded")
    about = f'{channel}: "{title}" (VOD {vod_id})' if vod_id else ""
    link = console_link(console_url, vod_id)
    head, what, step, kind = _TEXT[event]
    facts = {**payload, "title": title, "channel": channel, "reason": reason,
             "vod_id": vod_id or "", "resume_at": _when(payload.get("resume_at")),
             "expires": _when(payload.get("expires_at")),
             "open_until": _when(payload.get("circuit_open_until"))}  # fmt: skip
    lines = [line for line in (about, what.format_map(_Missing(facts))) if line]
    lines += [f"Console: {link}", f"Next: {step.format_map(_Missing(facts))}"]
    return Message(head.format_map(_Missing(facts))[:120], "\n".join(lines), kind)


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


# event: (title, what happened, next step, Apprise type)
_TEXT: dict[Event, tuple[str, str, str, str]] = {
    Event.PUBLISHED: (
        "Published: {title}", "It is on YouTube: {youtube_url}",
        "nothing to do.", "success"),
    Event.FAILED: (
        "Failed for good: {title}", "Reason: {reason}",
        "fix the cause, then retry it from its console page (POST /admin/vods/{vod_id}/retry).",
        "failure"),
    Event.AT_RISK: (
        "At risk ({threshold}): {title}",
        "Not on YouTube yet and Twitch deletes it at {expires} (state: {state}).",
        "see /readyz for what holds it (uploads paused, breaker open, credentials, disk) or "
        "raise its priority (POST /admin/vods/{vod_id}/priority).", "warning"),
    Event.GONE_UNARCHIVED: (
        "Lost before archiving: {title}",
        "Twitch deleted this VOD before we archived it (state was {state}).",
        "nothing can recover it; check why it waited (/status, the log) so the next one is "
        "archived in time.", "failure"),
    Event.AUTH_NEEDED: (
        "YouTube sign-in needed", "Google refused the stored refresh token: {reason}.",
        "run `vodarchiver auth youtube` (or set YT_REFRESH_TOKEN and restart); downloaded VODs "
        "wait in waiting_for_auth meanwhile.", "failure"),
    Event.TOKEN_EXPIRING: (
        "YouTube token expires {expires}",
        "The refresh token is {age} old; YOUTUBE_TOKEN_LIFETIME is {lifetime}.",
        "run `vodarchiver auth youtube` before {expires}; a Google project published "
        "'In production' stops the 7-day expiry.", "warning"),
    Event.TWITCH_AUTH_FAILED: (
        "Twitch refused our credentials ({which})", "{reason}",
        "check TWITCH_CLIENT_ID/TWITCH_CLIENT_SECRET (chat: TWITCH_BOT_USERNAME/"
        "TWITCH_OAUTH_TOKEN) and restart; the stage retries with backoff meanwhile.", "failure"),
    Event.CIRCUIT_OPEN: (
        "Uploads stopped: circuit breaker open",
        "{circuit_failures} uploads failed in a row; one probe upload goes at {open_until}.",
        "read the failed uploads in /status; POST /admin/circuit/reset once the cause is fixed.",
        "warning"),
    Event.CIRCUIT_CLOSED: (
        "Uploads resumed: circuit breaker closed", "An upload succeeded again.",
        "nothing to do.", "success"),
    Event.QUOTA_EXHAUSTED: (
        "YouTube quota spent until {resume_at}", "Uploads pause until {resume_at}.",
        "nothing, unless it happens daily: ask Google for more quota or lower "
        "YOUTUBE_QUOTA_COSTS.", "warning"),
    Event.DISK_LOW: (
        "Disk low: {free_gib} GiB free", "DATA_DIR keeps {min_gib} GiB free; downloads wait.",
        "free space, or lower RETENTION_KEEP_DAYS / set RETENTION_MAX_GB "
        "(`vodarchiver retention --dry-run` shows what would go).", "warning"),
    Event.CHAT_OVERDUE: (
        "Chat without its VOD: {channel}",
        "Chat of stream {stream_id} ({messages} messages) still has no VOD.",
        "check that the channel keeps past broadcasts; the chat stays in the database meanwhile.",
        "warning"),
}  # fmt: skip


# --- decisions ------------------------------------------------------------------------------


def delivery_delay(attempts: int, *, base_s: float, cap_s: float = 3600.0) -> float:
    """Seconds before the next delivery after `attempts` failed ones (doubling, capped)."""
    return float(min(cap_s, base_s * 2 ** max(0, attempts - 1)))


def at_risk_thresholds(window: timedelta) -> list[timedelta]:
    """AT_RISK_WINDOW, and 12 hours as a last call when the window is longer."""
    last = timedelta(hours=12)
    return [window, last] if window > last else [window]


def at_risk_due(
    expires_at: datetime, now: datetime, thresholds: list[timedelta]
) -> timedelta | None:
    """The tightest threshold an unarchived VOD has crossed (None: not at risk, or expired)."""
    left = expires_at - now
    if left <= timedelta(0):
        return None
    crossed = [t for t in thresholds if left <= t]
    return min(crossed) if crossed else None


def threshold_label(threshold: timedelta) -> str:
    """`48h`, `12h`, `90m`: the threshold in a dedupe key and a title."""
    seconds = int(threshold.total_seconds())
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds // 60}m"


def token_warning_ahead(lifetime: timedelta) -> timedelta:
    """How long before the end of its life a refresh token is reported: two days, or half the
    lifetime when that is shorter (7 days: reported at 5 days old; 1 day: at 12 hours)."""
    return min(timedelta(days=2), lifetime / 2)


def token_expiring_due(
    issued_at: datetime, now: datetime, lifetime: timedelta | None
) -> datetime | None:
    """When the token dies, if that is close enough to tell the operator now."""
    if lifetime is None:
        return None
    dies = issued_at + lifetime
    return dies if now >= dies - token_warning_ahead(lifetime) else None


def parse_optional_duration(raw: str) -> timedelta | None:
    """YOUTUBE_TOKEN_LIFETIME: a duration (`7d`, `36h`), or empty for unknown."""
    raw = raw.strip()
    return timedelta(seconds=positive_duration(raw)) if raw else None


def parse_console_url(raw: str) -> str:
    """CONSOLE_URL: an http(s) base URL, or empty to derive it from HTTP_ADDR."""
    raw = raw.strip()
    return http_url(raw).rstrip("/") if raw else ""
