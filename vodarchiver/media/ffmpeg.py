"""ffmpeg and ffprobe: the remux to mp4 and the checks before a file counts as downloaded. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vodarchiver.errors import PermanentError

# A verified file's duration may differ from Helix's by 2 seconds or 0.5 %, whichever is larger
# (Helix rounds to the second; audio and video rarely end on the same frame).
TOLERANCE_S = 2.0
TOLERANCE_SHARE = 0.005


class ProbeError(PermanentError):
    """ffprobe could not read the file as media."""


def remux_argv(source: Path | None, target: Path, *, ffmpeg: str = "ffmpeg") -> list[str]:
    """MPEG-TS to mp4, streams copied, the index moved to the front (`faststart`) for YouTube.

    `source=None` reads the MPEG-TS from standard input (a pipe fed during the download)."""
    what = ["-f", "mpegts", "-i", "pipe:0"] if source is None else ["-i", str(source)]
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        *what,
        "-map", "0", "-c", "copy", "-dn", "-ignore_unknown",
        "-movflags", "+faststart",
        "-f", "mp4", str(target),
    ]  # fmt: skip


def probe_argv(path: Path, *, ffprobe: str = "ffprobe") -> list[str]:
    """ffprobe's view of the container and its streams, as JSON."""
    return [
        ffprobe, "-v", "error", "-hide_banner",
        "-show_entries", "format=duration,format_name,size:stream=codec_type,codec_name",
        "-of", "json", str(path),
    ]  # fmt: skip


@dataclass(frozen=True)
class Probe:
    """What ffprobe says about a file."""

    duration_s: float
    format_name: str
    streams: tuple[str, ...]  # codec types: "video", "audio", ...


def parse_probe(text: str) -> Probe:
    """ffprobe's JSON as a Probe; ProbeError when it is not a media file with a duration."""
    try:
        data = json.loads(text)
        fmt = data["format"]
        duration = float(fmt["duration"])
        streams = tuple(str(s.get("codec_type", "")) for s in data.get("streams", []))
    except (ValueError, KeyError, TypeError) as exc:
        raise ProbeError(f"ffprobe found no media duration ({exc.__class__.__name__})") from exc
    return Probe(duration, str(fmt.get("format_name", "")), streams)


def duration_matches(actual_s: float, expected_s: float) -> bool:
    """Whether a file is as long as the VOD: within 2 s or 0.5 %, whichever is larger."""
    return abs(actual_s - expected_s) <= max(TOLERANCE_S, TOLERANCE_SHARE * expected_s)
