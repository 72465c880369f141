"""yt-dlp as a subprocess: its argv, its progress lines and its failures. Pure: no I/O.

Why a subprocess and not `yt_dlp.YoutubeDL` in a thread: a cancel must really stop the download,
and a Python thread cannot be stopped from outside, while a process can (SIGTERM, then SIGKILL);
a crash or a leak in yt-dlp or its extractors stays outside the daemon; and its memory is its own.
Progress comes back as one JSON object per line (`--progress-template`), failures as an exit
status and messages that `classify` sorts into what the stage should do next.

Resume is yt-dlp's own: with the same output path it continues from the fragment index it
saved next to the `.part` file. `--abort-on-unavailable-fragments` makes a fragment that never
comes fail the download, rather than yt-dlp skipping it and producing a file with a hole.
"""

from __future__ import annotations

import enum
import errno
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

PROGRESS_MARK = "VODARCHIVER-PROGRESS "
# ytdlp_main's own option and its last line; kept here too so this module stays free of yt-dlp.
TEE_OPTION = "--vodarchiver-tee-fd"
TEE_COMPLETE = "VODARCHIVER-TEE-COMPLETE "


def argv(
    url: str,
    output: Path,
    *,
    fragments: int,
    rate_limit: str = "",
    retries: int = 10,
    retry_sleep: tuple[float, float] = (1.0, 30.0),
    python: str = sys.executable,
    tee_fd: int | None = None,
) -> list[str]:
    """The command line for one download of `url` into `output` (an MPEG-TS file).

    With `tee_fd`, the file is also written to that descriptor as it grows (a pipe into the
    remux; see `ytdlp_main`)."""
    tee = [TEE_OPTION, str(tee_fd)] if tee_fd is not None else []
    args = [
        python, "-m", "vodarchiver.media.ytdlp_main", *tee,
        "--ignore-config", "--no-cache-dir", "--no-colors", "--newline", "--no-playlist",
        "--no-mtime", "--continue",
        # Helix's URL is a twitch.tv VOD page (tests serve a bare playlist). Matching a URL
        # against all ~1,900 extractors compiles each one's pattern: about a second of CPU.
        "--use-extractors", "twitch:vod,generic",
        "--downloader", "m3u8:native",
        "--hls-use-mpegts", "--fixup", "never",  # ffmpeg remuxes afterwards, in one pass
        "--concurrent-fragments", str(fragments),
        "--abort-on-unavailable-fragments",
        "--retries", str(retries), "--fragment-retries", str(retries),
        "--retry-sleep", f"http:exp={retry_sleep[0]:g}:{retry_sleep[1]:g}",
        "--retry-sleep", f"fragment:exp={retry_sleep[0]:g}:{retry_sleep[1]:g}",
        "--socket-timeout", "30",
        "--progress-template", f"download:{PROGRESS_MARK}%(progress)j",
        # A progress line per block read would cost more CPU than the download itself; we store
        # progress once a second anyway.
        "--progress-delta", "0.5",
        # Read in large blocks: yt-dlp's 1 KiB default makes Python the bottleneck past ~30 MB/s.
        "--buffer-size", "1M",
        "-o", str(output),
    ]  # fmt: skip
    if rate_limit:
        args += ["--limit-rate", rate_limit]
    return [*args, "--", url]


@dataclass(frozen=True)
class Progress:
    """One progress report of a download."""

    downloaded_bytes: int
    total_bytes: int | None  # exact when known, else yt-dlp's estimate
    speed_bps: float | None
    eta_s: float | None
    fragment_index: int | None
    fragment_count: int | None
    finished: bool

    @property
    def percent(self) -> float | None:
        """Share done, from the fragments when known (the byte total is only an estimate)."""
        if self.finished:
            return 100.0
        if self.fragment_index is not None and self.fragment_count:
            return round(100.0 * self.fragment_index / self.fragment_count, 1)
        if self.total_bytes:
            return round(min(100.0, 100.0 * self.downloaded_bytes / self.total_bytes), 1)
        return None

    def as_json(self) -> dict[str, object]:
        """What the VOD row and GET /vods/{id} show."""
        return {
            "bytes_done": self.downloaded_bytes,
            "bytes_total": self.total_bytes,
            "percent": self.percent,
            "speed_bps": round(self.speed_bps) if self.speed_bps is not None else None,
            "eta_s": round(self.eta_s) if self.eta_s is not None else None,
            "fragment_index": self.fragment_index,
            "fragment_count": self.fragment_count,
        }


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def parse_progress(line: str) -> Progress | None:
    """A Progress from one output line, or None when the line is something else."""
    if not line.startswith(PROGRESS_MARK):
        return None
    try:
        data = json.loads(line[len(PROGRESS_MARK) :])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    done = _number(data.get("downloaded_bytes"))
    total = _number(data.get("total_bytes")) or _number(data.get("total_bytes_estimate"))
    index, count = _number(data.get("fragment_index")), _number(data.get("fragment_count"))
    return Progress(
        downloaded_bytes=int(done or 0),
        total_bytes=int(total) if total else None,
        speed_bps=_number(data.get("speed")),
        eta_s=_number(data.get("eta")),
        fragment_index=int(index) if index is not None else None,
        fragment_count=int(count) if count is not None else None,
        finished=data.get("status") == "finished",
    )


def parse_tee_complete(line: str) -> int | None:
    """The byte count of ytdlp_main's line saying the pipe carried the whole file, else None."""
    if not line.startswith(TEE_COMPLETE):
        return None
    count = line[len(TEE_COMPLETE) :].strip()
    return int(count) if count.isdecimal() else None


class Outcome(enum.StrEnum):
    """What a failed download means for the VOD."""

    RETRY = "retry"  # network, 5xx, fragments, anything unknown: try again later
    GONE = "gone"  # 404 on the VOD itself, or Twitch says it no longer exists
    RESTRICTED = "restricted"  # subscriber-only or login required: we do not bypass it
    NO_DISK = "no_disk"  # the disk filled up: wait for space, keep what was downloaded


@dataclass(frozen=True)
class Failure:
    """A failed download: what to do about it, and why in one line."""

    outcome: Outcome
    reason: str


_NO_DISK = re.compile(r"No space left on device|Errno 28|disk quota exceeded", re.I)


def disk_full(output: str) -> bool:
    """Whether a program's output says the disk (or the quota) is full."""
    return _NO_DISK.search(output) is not None


def disk_full_error(exc: BaseException) -> bool:
    """Whether an exception is the filesystem's own ENOSPC (no block or inode left) or EDQUOT."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


_RULES: tuple[tuple[Outcome, re.Pattern[str]], ...] = (
    (
        Outcome.RESTRICTED,
        re.compile(
            r"only available (?:for|to) subscribers|subscriber[s-]?only|sub-only"
            r"|requires? (?:authentication|login)|login required|use --cookies"
            r"|members?[- ]only",
            re.I,
        ),
    ),
    (
        Outcome.GONE,
        re.compile(
            r"HTTP Error 404(?!.*fragment)|404: Not Found|does not exist|has been deleted"
            r"|video (?:is )?unavailable|no longer available",
            re.I,
        ),
    ),
)


def classify(exit_code: int, output: str) -> Failure:
    """What a failed yt-dlp run means, from its exit status and the tail of its output.

    Only ERROR lines are looked at when there are some, so a retried and recovered warning
    earlier in the output cannot decide the verdict.
    """
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    if disk_full(output):  # a full disk shows in warnings too, and beats any other cause
        return Failure(Outcome.NO_DISK, "the disk is full")
    text = "\n".join(errors) if errors else output
    reason = (errors[-1].removeprefix("ERROR:").strip() if errors else "") or (
        f"yt-dlp exited with status {exit_code}"
    )
    never = re.search(r"fragment (\d+) not found, unable to continue", text)
    if never:
        return Failure(
            Outcome.RETRY, f"fragment {never.group(1)} never arrived, even after retries"
        )
    if re.search(r"No such file or directory: \S*-Frag\d+", text):
        # yt-dlp's own race when it aborts on a dead fragment with others in flight: the real
        # cause (a fragment that never arrived) is lost from its message.
        return Failure(
            Outcome.RETRY, f"a fragment never arrived, even after retries ({reason[:200]})"
        )
    for outcome, pattern in _RULES:
        if pattern.search(text):
            return Failure(outcome, reason[:500])
    return Failure(Outcome.RETRY, reason[:500])
