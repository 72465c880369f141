"""Pure media decisions: yt-dlp's argv, progress and failures; ffprobe and the duration check."""

from __future__ import annotations

from pathlib import Path

import pytest

from vodarchiver.media import ffmpeg, ytdlp
from vodarchiver.media.ytdlp import Outcome
from vodarchiver.pipeline.backoff import retry_delay_s
from vodarchiver.pipeline.rules import estimated_bytes, room_to_download


def test_argv_is_safe_and_complete() -> None:
    """No shell, no aria2c; concurrent fragments, abort on a missing fragment, resume, our progress format, the URL last after --."""
    args = ytdlp.argv(
        "https://www.twitch.tv/videos/1", Path("/d/1.ts"), fragments=8, rate_limit="10M"
    )
    assert args[1:3] == ["-m", "vodarchiver.media.ytdlp_main"]
    assert "aria2c" not in " ".join(args)
    for flag in (
        "--abort-on-unavailable-fragments",
        "--continue",
        "--hls-use-mpegts",
        "--ignore-config",
    ):
        assert flag in args
    assert args[args.index("--concurrent-fragments") + 1] == "8"
    assert args[args.index("--use-extractors") + 1] == "twitch:vod,generic"
    assert args[args.index("--limit-rate") + 1] == "10M"
    assert args[-2:] == ["--", "https://www.twitch.tv/videos/1"]
    assert "--limit-rate" not in ytdlp.argv("u", Path("/d/1.ts"), fragments=1)


def test_the_tee_option_comes_first_and_only_when_asked() -> None:
    """The pipe into the remux is our own option, placed before yt-dlp's arguments (ytdlp_main strips it)."""
    args = ytdlp.argv("u", Path("/d/1.ts"), fragments=4, tee_fd=7)
    assert args[3:5] == [ytdlp.TEE_OPTION, "7"]
    assert ytdlp.TEE_OPTION not in ytdlp.argv("u", Path("/d/1.ts"), fragments=4)


def test_the_tee_complete_line_parses() -> None:
    """Only ytdlp_main's own line, with a byte count, says the pipe carried the whole file."""
    assert ytdlp.parse_tee_complete(ytdlp.TEE_COMPLETE + "1234") == 1234
    assert ytdlp.parse_tee_complete(ytdlp.TEE_COMPLETE + "12x") is None
    assert ytdlp.parse_tee_complete("[download] 100%") is None


def test_progress_lines_parse() -> None:
    """Our progress lines become Progress; anything else is ignored."""
    line = (
        ytdlp.PROGRESS_MARK
        + '{"status": "downloading", "downloaded_bytes": 500, "total_bytes_estimate": 1000.0, "speed": 250.5, "eta": 2, "fragment_index": 3, "fragment_count": 12}'
    )
    progress = ytdlp.parse_progress(line)
    assert progress is not None
    assert (progress.downloaded_bytes, progress.total_bytes, progress.percent) == (500, 1000, 25.0)
    assert progress.as_json()["speed_bps"] == 250
    assert ytdlp.parse_progress("[download] Destination: x.ts") is None
    assert ytdlp.parse_progress(ytdlp.PROGRESS_MARK + "{broken") is None
    finished = ytdlp.parse_progress(
        ytdlp.PROGRESS_MARK + '{"status": "finished", "downloaded_bytes": 10}'
    )
    assert finished is not None
    assert finished.percent == 100.0


@pytest.mark.parametrize(
    ("output", "outcome"),
    [
        ("ERROR: [generic] Unable to download webpage: HTTP Error 404: Not Found", Outcome.GONE),
        ("ERROR: [twitch:vod] 123: Video 123 does not exist", Outcome.GONE),
        (
            "ERROR: [twitch:vod] 123: This video is only available for subscribers. Use --cookies",
            Outcome.RESTRICTED,
        ),
        ("ERROR: [twitch:vod] login required to access this video", Outcome.RESTRICTED),
        ("ERROR: unable to write data: [Errno 28] No space left on device", Outcome.NO_DISK),
        ("ERROR: fragment 6 not found, unable to continue", Outcome.RETRY),
        ("ERROR: Unable to download video: HTTP Error 503: Service Unavailable", Outcome.RETRY),
        ("ERROR: something nobody has seen before", Outcome.RETRY),
        ("WARNING: HTTP Error 404 on a retry that recovered\nERROR: HTTP Error 500", Outcome.RETRY),
        (
            "WARNING: [Errno 28] No space left on device. Retrying fragment 3\nERROR: fragment 3 not found, unable to continue",
            Outcome.NO_DISK,
        ),
    ],
)
def test_failures_are_classified(output: str, outcome: Outcome) -> None:
    """Gone, restricted, full disk, or retry (the default), from ERROR lines only."""
    assert ytdlp.classify(1, output).outcome is outcome


def test_failure_reasons_are_clear() -> None:
    """A dead fragment is named; yt-dlp's racy message is translated; an empty output still says something."""
    assert (
        ytdlp.classify(1, "ERROR: fragment 6 not found, unable to continue").reason
        == "fragment 6 never arrived, even after retries"
    )
    racy = ytdlp.classify(
        1,
        "ERROR: Unable to download video: [Errno 2] No such file or directory: '/d/v.ts.part-Frag1'",
    )
    assert racy.reason.startswith("a fragment never arrived")
    assert ytdlp.classify(3, "").reason == "yt-dlp exited with status 3"


def test_remux_and_probe_argv() -> None:
    """Stream copy into mp4 with the index first; ffprobe asked for JSON."""
    remux = ffmpeg.remux_argv(Path("a.ts"), Path("a.mp4.part"))
    assert remux[remux.index("-c") + 1] == "copy"
    assert remux[remux.index("-movflags") + 1] == "+faststart"
    assert remux[-3:] == ["-f", "mp4", "a.mp4.part"]
    assert ffmpeg.probe_argv(Path("a.mp4"))[-3:] == ["-of", "json", "a.mp4"]
    streamed = ffmpeg.remux_argv(None, Path("a.mp4.part"))
    assert streamed[streamed.index("-i") - 2 : streamed.index("-i") + 2] == [
        "-f", "mpegts", "-i", "pipe:0",
    ]  # fmt: skip
    assert streamed[streamed.index("-movflags") + 1] == "+faststart"


def test_probe_parsing() -> None:
    """A duration and streams come out; anything without a duration is a ProbeError."""
    probe = ffmpeg.parse_probe(
        '{"streams": [{"codec_type": "video"}, {"codec_type": "audio"}], "format": {"duration": "601.9", "format_name": "mov,mp4"}}'
    )
    assert (probe.duration_s, probe.streams) == (601.9, ("video", "audio"))
    for bad in ("", "{}", '{"format": {}}', '{"format": {"duration": "N/A"}}'):
        with pytest.raises(ffmpeg.ProbeError):
            ffmpeg.parse_probe(bad)


@pytest.mark.parametrize(
    ("actual", "expected", "ok"),
    [
        (601.9, 600, True),
        (598.1, 600, True),
        (596.9, 600, False),
        (36_170, 36_000, True),
        (35_800, 36_000, False),
        (1.0, 0.5, True),
    ],
)
def test_duration_tolerance(actual: float, expected: float, ok: bool) -> None:
    """Within 2 s or 0.5 %, whichever is larger."""
    assert ffmpeg.duration_matches(actual, expected) is ok


def test_retry_delays_double_and_cap() -> None:
    """Base, twice, four times... never past the cap."""
    assert [retry_delay_s(n, base_s=60, cap_s=600) for n in (1, 2, 3, 4, 5, 99)] == [
        60,
        120,
        240,
        480,
        600,
        600,
    ]
    assert retry_delay_s(0, base_s=60, cap_s=600) == 0


def test_disk_room() -> None:
    """A download needs twice its estimate (TS and mp4 side by side) minus what is already there."""
    one_hour = estimated_bytes(3600, 8.0)
    assert one_hour == 3_600_000_000
    assert room_to_download(
        free_bytes=10 * 10**9, estimate_bytes=one_hour, partial_bytes=0, min_free_bytes=2 * 10**9
    )
    assert not room_to_download(
        free_bytes=8 * 10**9, estimate_bytes=one_hour, partial_bytes=0, min_free_bytes=2 * 10**9
    )
    assert room_to_download(
        free_bytes=8 * 10**9,
        estimate_bytes=one_hour,
        partial_bytes=3 * 10**9,
        min_free_bytes=2 * 10**9,
    )
