"""HLS VODs for tests and benchmarks, made with the real ffmpeg and cached between runs.

Encoding is slow on two cores, so a short clip is encoded once and looped with stream copy
(`-stream_loop`), which keeps timestamps continuous: a 10-minute VOD takes well under a second.
Results are cached under `.cache/media` in the checkout, keyed by their parameters.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "media"


@dataclass(frozen=True)
class HlsVod:
    """A generated HLS VOD: its playlist, segments, duration and size."""

    directory: Path
    duration_s: float
    segments: int
    total_bytes: int

    @property
    def playlist(self) -> Path:
        """index.m3u8."""
        return self.directory / "index.m3u8"

    def segment_names(self) -> list[str]:
        """Segment file names in playlist order."""
        return [
            line
            for line in self.playlist.read_text().splitlines()
            if line and not line.startswith("#")
        ]


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def make_hls(
    duration_s: int,
    *,
    segment_s: int = 6,
    size: str = "160x90",
    fps: int = 10,
    video_kbps: int = 0,
    noise: bool = False,
) -> HlsVod:
    """An HLS VOD of about `duration_s` seconds (cached). `noise` makes it incompressible, so
    `video_kbps` really sets its size (for large benchmark files)."""
    key = {
        "duration": duration_s,
        "segment": segment_s,
        "size": size,
        "fps": fps,
        "kbps": video_kbps,
        "noise": noise,
        "v": 2,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    target = CACHE / f"hls-{digest}"
    meta = target / "meta.json"
    if meta.exists():
        data = json.loads(meta.read_text())
        return HlsVod(target, data["duration_s"], data["segments"], data["total_bytes"])
    work = CACHE / f"tmp-{digest}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    clip_s = 10 if duration_s >= 10 else duration_s
    source = f"testsrc=size={size}:rate={fps}"
    video = ["-vf", "noise=alls=100:allf=t"] if noise else []
    rate = (
        ["-b:v", f"{video_kbps}k", "-maxrate", f"{video_kbps}k", "-bufsize", f"{video_kbps}k"]
        if video_kbps
        else []
    )
    _run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", source, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050",
        "-t", str(clip_s), *video, "-c:v", "libx264", "-preset", "ultrafast", *rate,
        "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "32k", "-ac", "1", "-f", "mpegts", str(work / "clip.ts"),
    ])  # fmt: skip
    loops = max(0, -(-duration_s // clip_s) - 1)
    _run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-stream_loop", str(loops), "-i", str(work / "clip.ts"), "-t", str(duration_s), "-c", "copy",
        "-f", "hls", "-hls_time", str(segment_s), "-hls_list_size", "0",
        "-hls_segment_filename", str(work / "seg%05d.ts"), str(work / "index.m3u8"),
    ])  # fmt: skip
    (work / "clip.ts").unlink()
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(work / "index.m3u8")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    segments = sorted(work.glob("seg*.ts"))
    data = {
        "duration_s": float(probe.stdout.strip()),
        "segments": len(segments),
        "total_bytes": sum(p.stat().st_size for p in segments),
    }
    (work / "meta.json").write_text(json.dumps(data))
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    return HlsVod(target, data["duration_s"], data["segments"], data["total_bytes"])


def make_long_mp4(duration_s: int, *, gop_s: int = 60) -> Path:
    """An mp4 of `duration_s` seconds at a tiny bitrate (16x16, 1 fps, no audio), cached.

    Long enough to need splitting into parts (13 hours) yet a few hundred kilobytes, encoded in
    seconds; a keyframe every `gop_s` seconds, where the splitter may cut.
    """
    key = hashlib.sha256(json.dumps(["long", duration_s, gop_s]).encode()).hexdigest()[:16]
    target = CACHE / f"long-{duration_s}-{key}.mp4"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.mp4")
    _run([
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"color=c=gray:size=16x16:rate=1:duration={duration_s}",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop_s), "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", str(tmp),
    ])  # fmt: skip
    tmp.rename(target)
    return target
