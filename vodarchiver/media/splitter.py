"""Long VODs into parts YouTube accepts: planned purely, cut by ffmpeg (stream copy, keyframes).

YouTube takes at most 12 hours and 256 GB per video. A VOD longer than YOUTUBE_MAX_PART_DURATION
or larger than YOUTUBE_MAX_PART_SIZE is cut into the fewest equal parts that fit both; ffmpeg's
segment muxer cuts at the first keyframe at or after each planned time, without re-encoding, and
each part gets its index at the front (`faststart`) like the whole file. The parts are written
under temporary names and renamed only when all of them exist and parse, so a crash in the middle
of a split leaves nothing that looks finished.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vodarchiver import process
from vodarchiver.errors import TransientError
from vodarchiver.media import ffmpeg

# A keyframe cut lands up to one GOP (2 s on Twitch) after the planned time; keep some margin.
_SIZE_MARGIN = 1.02
_SPLIT_TIMEOUT_S = 6 * 3600.0


class SplitError(TransientError):
    """ffmpeg could not cut the file (a full disk, an unreadable file): try again later."""


@dataclass(frozen=True)
class Piece:
    """One finished part on disk and the stretch of the VOD it covers."""

    path: Path
    start_s: float
    duration_s: float
    size: int


def parts_needed(
    duration_s: float, size_bytes: int, *, max_duration_s: float, max_bytes: int
) -> int:
    """The fewest parts that keep each one under both limits."""
    by_time = math.ceil(duration_s / max_duration_s) if duration_s > max_duration_s else 1
    by_size = math.ceil(size_bytes * _SIZE_MARGIN / max_bytes) if size_bytes > max_bytes else 1
    return max(1, by_time, by_size)


def cut_points(duration_s: float, parts: int) -> list[float]:
    """Where to cut for `parts` equal parts (the keyframe after each point is where it lands)."""
    return [round(duration_s * k / parts, 3) for k in range(1, parts)]


def part_limit_s(
    duration_s: float, size_bytes: int, *, max_duration_s: float, max_bytes: int
) -> float:
    """The longest a part may be: YOUTUBE_MAX_PART_DURATION, or less where the size limit bites."""
    if size_bytes * _SIZE_MARGIN <= max_bytes or duration_s <= 0:
        return max_duration_s
    return min(max_duration_s, duration_s * max_bytes / (size_bytes * _SIZE_MARGIN))


def plan_cuts(
    duration_s: float, parts: int, *, limit_s: float, chapter_starts: Sequence[float],
    distance_s: float,
) -> list[float]:  # fmt: skip
    """Where to cut: at the chapter boundary nearest below each part's limit, when one is close.

    From each part's start the part may reach `limit_s` (`part_limit_s`). The cut goes to the
    latest chapter start within `distance_s` below that reach, else to the reach itself. A VOD
    without chapters is cut into `parts` equal parts, as before.
    """
    if parts < 2:
        return []
    starts = sorted(s for s in chapter_starts if 0 < s < duration_s)
    if not starts:
        return cut_points(duration_s, parts)
    cuts: list[float] = []
    start = 0.0
    while duration_s - start > limit_s + 1e-6:
        reach = start + limit_s
        near = [s for s in starts if start < s <= reach and s >= reach - distance_s]
        cut = near[-1] if near else reach
        cuts.append(round(cut, 3))
        start = cut
    return cuts


def part_name(source: Path, part: int) -> Path:
    """`<vod>.part-02.mp4` beside the source."""
    return source.with_name(f"{source.stem}.part-{part:02d}.mp4")


def split_argv(source: Path, pattern: Path, points: list[float], *, ffmpeg_bin: str) -> list[str]:
    """ffmpeg's segment muxer, streams copied, one mp4 with faststart per part."""
    return [
        ffmpeg_bin, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-i", str(source),
        "-map", "0", "-c", "copy", "-dn", "-ignore_unknown",
        "-f", "segment", "-segment_times", ",".join(f"{p:.3f}" for p in points),
        "-reset_timestamps", "1", "-segment_start_number", "1",
        "-segment_format", "mp4", "-segment_format_options", "movflags=+faststart",
        str(pattern),
    ]  # fmt: skip


async def split(
    source: Path, parts: int, *, duration_s: float, ffmpeg_bin: str, ffprobe_bin: str,
    points: Sequence[float] | None = None,
) -> list[Piece]:  # fmt: skip
    """Cut `source` into `parts` files (at `points`, else equal parts); SplitError on failure."""
    points = list(points) if points is not None else cut_points(duration_s, parts)
    parts = len(points) + 1
    tmp_dir = source.with_name(f"{source.stem}.split")
    if tmp_dir.exists():
        for leftover in tmp_dir.iterdir():
            leftover.unlink()
    tmp_dir.mkdir(exist_ok=True)
    pattern = tmp_dir / "part-%02d.mp4"
    argv = split_argv(source, pattern, points, ffmpeg_bin=ffmpeg_bin)
    done = await process.run(argv, env=process.MINIMAL_ENV, timeout_s=_SPLIT_TIMEOUT_S)
    made = sorted(tmp_dir.glob("part-*.mp4"))
    if done.returncode != 0 or len(made) != parts:
        detail = (done.output.strip().splitlines() or [f"status {done.returncode}"])[-1]
        raise SplitError(f"splitting into {parts} parts failed ({len(made)} made): {detail[:300]}")
    pieces: list[Piece] = []
    start = 0.0
    for n, path in enumerate(made, start=1):
        probed = await process.run(
            ffmpeg.probe_argv(path, ffprobe=ffprobe_bin), env=process.MINIMAL_ENV, timeout_s=120
        )
        try:
            duration = ffmpeg.parse_probe(probed.output).duration_s
        except ffmpeg.ProbeError as exc:
            raise SplitError(f"part {n} does not parse: {exc}") from exc
        pieces.append(Piece(part_name(source, n), start, duration, path.stat().st_size))
        start += duration
    for piece, path in zip(pieces, made, strict=True):
        os.replace(path, piece.path)
    tmp_dir.rmdir()
    return pieces
