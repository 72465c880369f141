"""Pure shaping of the console's data: rows and API documents in, template-ready values out.

Nothing here does I/O; every function takes `now` where time matters, so the tests need no
clock. The templates and the JSON twins show exactly these dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

# Actions that lose work or hide a VOD from the archive: the page asks before sending them.
DESTRUCTIVE = frozenset({"cancel", "skip", "reprocess"})
ACTION_ORDER = ("cancel", "restore", "retry", "reprocess", "skip", "priority")
THUMB_SIZE = {"width": "320", "height": "180"}


def iso(value: Any) -> str | None:
    """A datetime as ISO 8601, a string as it is, anything else None."""
    if isinstance(value, datetime):
        return value.isoformat()
    return value if isinstance(value, str) else None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string or a datetime as a datetime; None for anything else."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def at_risk_json(rows: Sequence[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """VODs at risk with the seconds left before Twitch deletes them."""
    out = []
    for row in rows:
        expires = row["expires_at"]
        out.append({
            "id": row["twitch_vod_id"], "channel": row["channel"], "title": row["title"],
            "state": row["state"], "expires_at": iso(expires),
            "seconds_left": round((expires - now).total_seconds()) if expires else None,
        })  # fmt: skip
    return out


def transfer_json(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A running download or upload: bytes, percent, speed and ETA.

    A download's figures are yt-dlp's, as the stage stored them; an upload's speed is its
    average since the stage took it (YouTube confirms bytes per chunk, not a rate).
    """
    base = {"id": row["twitch_vod_id"], "channel": row["channel"], "title": row["title"]}
    if row["state"] == "downloading":
        p = row.get("download_progress") or {}
        return {**base, "kind": "download", "bytes_done": p.get("bytes_done"),
                "bytes_total": p.get("bytes_total"), "percent": p.get("percent"),
                "speed_bps": p.get("speed_bps"), "eta_s": p.get("eta_s"),
                "updated_at": iso(row.get("download_progress_at"))}  # fmt: skip
    done = int(row.get("upload_bytes_done") or 0)
    total = int(row.get("upload_bytes_total") or 0) or None
    started = row.get("upload_started_at")
    elapsed = (now - started).total_seconds() if isinstance(started, datetime) else 0.0
    speed = done / elapsed if elapsed > 0 and done else None
    eta = (total - done) / speed if speed and total else None
    return {**base, "kind": "upload", "bytes_done": done, "bytes_total": total,
            "percent": round(100.0 * done / total, 1) if total else None,
            "speed_bps": round(speed) if speed else None, "eta_s": round(eta) if eta else None,
            "updated_at": None}  # fmt: skip


def dashboard_json(
    *,
    status: Mapping[str, Any],
    ready: Mapping[str, Any],
    at_risk: list[dict[str, Any]],
    active: list[dict[str, Any]],
    disk_free: int | None,
    disk_min_free: int,
    window_s: float,
    quota_resets_at: datetime,
) -> dict[str, Any]:
    """The dashboard: `/status` and `/readyz` as they are, plus at-risk VODs, transfers, disk."""
    uploads = status.get("uploads") or {"enabled": False}
    return {
        "counts": {k: v for k, v in status.get("by_state", {}).items() if v},
        "total": status.get("total", 0),
        "at_risk_window_s": window_s,
        "at_risk": at_risk,
        "active": active,
        "uploads": {
            "enabled": bool(uploads.get("enabled")),
            "paused": bool(uploads.get("paused")),
            "paused_reason": uploads.get("paused_reason"),
            "resume_at": uploads.get("resume_at"),
            "quota": uploads.get("quota") or {},
            "quota_resets_at": quota_resets_at.isoformat(),
        },
        "circuit": {
            "state": status.get("circuit_state"),
            "failures": status.get("circuit_failures"),
            "open_until": status.get("circuit_open_until"),
        },
        "disk": {
            "free_bytes": disk_free,
            "min_free_bytes": disk_min_free,
            "ok": disk_free is not None and disk_free >= disk_min_free,
        },
        "ready": ready.get("status") == "ready",
        "checks": ready.get("checks", {}),
    }


def vod_actions(vod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The VOD's action buttons, in a fixed order, the destructive ones marked for confirming.

    They are the actions the lifecycle allows (`actions` of `GET /vods/{id}`). A gone VOD also
    gets Restore: the lifecycle allows it only if Twitch still lists the VOD, which the operator
    asks Helix when the button is pressed (the refusal, if any, says so).
    """
    allowed = vod.get("actions")
    names = [str(a) for a in allowed] if isinstance(allowed, list) else []
    if vod.get("state") == "gone" and "restore" not in names:
        names.append("restore")
    ordered = [a for a in ACTION_ORDER if a in names] + [a for a in names if a not in ACTION_ORDER]
    return [{"name": a, "confirm": a in DESTRUCTIVE} for a in ordered]


def timeline_json(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A VOD's audited state changes (`vod_audit`, read newest first), oldest first."""
    return [{
        "at": iso(r.get("at")), "action": r.get("action"), "from_state": r.get("from_state"),
        "to_state": r.get("to_state"), "actor": r.get("actor"),
        "detail": r.get("detail") if isinstance(r.get("detail"), dict) else {},
    } for r in reversed(rows)]  # fmt: skip


def thumbnail(url: Any) -> str | None:
    """Twitch's thumbnail template filled in at 320x180; None when there is none."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return None
    return url.replace("%{width}", THUMB_SIZE["width"]).replace("%{height}", THUMB_SIZE["height"])


def hms(ms: int | None) -> str:
    """Milliseconds as h:mm:ss."""
    if ms is None:
        return "?"
    s = max(0, int(ms) // 1000)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def parse_offset(raw: str) -> int:
    """A time into the VOD, `h:mm:ss`, `m:ss` or seconds, as milliseconds; ValueError else."""
    parts = raw.strip().split(":")
    if not 1 <= len(parts) <= 3 or any(p.strip() == "" for p in parts):
        raise ValueError(raw)
    seconds = 0.0
    for part in parts:
        value = float(part)
        if value < 0:
            raise ValueError(raw)
        seconds = seconds * 60 + value
    return round(seconds * 1000)


def emote_names(text: str, emotes: Sequence[Mapping[str, Any]]) -> list[str]:
    """The emotes of a message as the words they replace, each once, in order of appearance."""
    names: list[str] = []
    for e in sorted(emotes, key=lambda e: int(e.get("start", 0))):
        name = text[int(e["start"]) : int(e["end"]) + 1]
        if name and name not in names:
            names.append(name)
    return names


def human_bytes(n: Any) -> str:
    """A byte count in binary units, one decimal."""
    if not isinstance(n, int | float):
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # not reached


def human_duration(seconds: Any) -> str:
    """Seconds as `1d 2h`, `3h 4m`, `5m 6s` or `7s`."""
    if not isinstance(seconds, int | float):
        return "?"
    s = max(0, round(seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    if m:
        return f"{m}m {s % 60}s"
    return f"{s}s"
