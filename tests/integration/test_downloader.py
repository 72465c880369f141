"""The downloader with the real yt-dlp and ffmpeg, on generated HLS served by the fake CDN."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.cdn import FakeCdn
from tests.fakes.server import LocalServer
from tests.media import HlsVod, make_hls
from vodarchiver import process
from vodarchiver.media.downloader import Downloaded, Downloader, Job, Tools
from vodarchiver.media.ytdlp import Failure, Outcome, Progress


@dataclass
class Cdn:
    """The fake CDN, where it listens, and a 10-minute VOD on it."""

    fake: FakeCdn
    url: str
    vod: HlsVod

    def job(self, directory: Path, name: str = "vod", duration_s: int | None = None) -> Job:
        """A download of the VOD served as `name`."""
        path = self.fake.add(name, self.vod)
        return Job(
            "123", f"{self.url}{path}", duration_s or round(self.vod.duration_s), directory / name
        )


@pytest.fixture(scope="module")
def vod() -> HlsVod:
    """A 10-minute HLS VOD in 6-second segments (cached)."""
    return make_hls(600)


@pytest.fixture
async def cdn(vod: HlsVod) -> AsyncIterator[Cdn]:
    """The fake CDN served on 127.0.0.1."""
    fake = FakeCdn()
    async with LocalServer(fake) as server:
        yield Cdn(fake, server.url, vod)


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """Where downloads go."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def downloader(**kwargs: object) -> Downloader:
    """A downloader with quick retries, as tests want them."""
    return Downloader(fragments=4, retries=4, retry_sleep=(0.05, 0.2), **kwargs)  # type: ignore[arg-type]


class Recorder:
    """Collects progress reports."""

    def __init__(self) -> None:
        self.reports: list[Progress] = []

    async def __call__(self, progress: Progress) -> None:
        self.reports.append(progress)


async def test_a_ten_minute_vod_downloads_and_verifies(cdn: Cdn, workdir: Path) -> None:
    """The whole VOD arrives as a faststart mp4 whose duration matches, with progress along the way."""
    job = cdn.job(workdir)
    progress = Recorder()
    result = await downloader().download(job, progress)
    assert isinstance(result, Downloaded), result
    assert result.path == job.mp4
    assert abs(result.duration_s - cdn.vod.duration_s) < 2
    assert result.fetched_bytes == cdn.vod.total_bytes
    head = job.mp4.read_bytes()[:64]
    assert b"ftyp" in head[:12]
    assert b"moov" in head  # faststart: the index comes before the media
    assert not job.ts.exists()
    assert progress.reports[-1].finished
    assert any(p.fragment_count == cdn.vod.segments for p in progress.reports)
    assert result.streamed  # remuxed while it downloaded


async def test_a_failing_streaming_remux_falls_back_to_remuxing_the_file(
    cdn: Cdn, workdir: Path
) -> None:
    """When the remux fed during the download fails, the finished TS is remuxed afterwards and verified."""
    broken = workdir / "ffmpeg"
    real = shutil.which("ffmpeg")
    # An ffmpeg that dies on the pipe (as on a crash midway) but remuxes files normally.
    broken.write_text(f'#!/bin/sh\ncase "$*" in *pipe:0*) exit 1;; esac\nexec {real} "$@"\n')
    broken.chmod(0o755)
    job = cdn.job(workdir)
    result = await downloader(tools=Tools(ffmpeg=str(broken))).download(job, Recorder())
    assert isinstance(result, Downloaded), result
    assert not result.streamed
    assert abs(result.duration_s - cdn.vod.duration_s) < 2
    assert b"moov" in job.mp4.read_bytes()[:64]


async def test_without_streaming_the_file_is_remuxed_afterwards(cdn: Cdn, workdir: Path) -> None:
    """The remux after the download (no pipe) still gives a verified faststart mp4."""
    job = cdn.job(workdir)
    result = await downloader(stream_remux=False).download(job, Recorder())
    assert isinstance(result, Downloaded), result
    assert not result.streamed
    assert b"moov" in job.mp4.read_bytes()[:64]


async def test_three_500s_on_one_fragment_are_survived(cdn: Cdn, workdir: Path) -> None:
    """A fragment answering 500 three times is retried until it comes."""
    job = cdn.job(workdir)
    cdn.fake.fail("vod", cdn.vod.segment_names()[10], 500, times=3)
    result = await downloader().download(job, Recorder())
    assert isinstance(result, Downloaded), result
    assert cdn.fake.served(500) == 3


async def test_a_dropped_connection_midway_is_survived(cdn: Cdn, workdir: Path) -> None:
    """A connection cut halfway through a fragment costs a retry, not the file."""
    job = cdn.job(workdir)
    cdn.fake.drop("vod", cdn.vod.segment_names()[20], times=2)
    result = await downloader().download(job, Recorder())
    assert isinstance(result, Downloaded), result
    assert abs(result.duration_s - cdn.vod.duration_s) < 2


async def test_a_404_playlist_means_gone(cdn: Cdn, workdir: Path) -> None:
    """The VOD itself answering 404 is `gone`, not a retry."""
    job = cdn.job(workdir)
    cdn.fake.fail("vod", "index.m3u8", 404, times=None)
    result = await downloader().download(job, Recorder())
    assert isinstance(result, Failure)
    assert result.outcome is Outcome.GONE
    assert "404" in result.reason


async def test_a_fragment_that_never_comes_fails_clearly(cdn: Cdn, workdir: Path) -> None:
    """A fragment that always fails ends the attempt with a reason naming it, and no mp4."""
    job = cdn.job(workdir)
    cdn.fake.fail("vod", cdn.vod.segment_names()[30], 500, times=None)
    result = await downloader().download(job, Recorder())
    assert isinstance(result, Failure)
    assert result.outcome is Outcome.RETRY
    assert "fragment" in result.reason.lower()
    assert not job.mp4.exists()
    assert not job.mp4_part.exists()


async def test_a_file_shorter_than_helix_says_is_not_downloaded(cdn: Cdn, workdir: Path) -> None:
    """If the file lasts 10 minutes but Helix says 20, it is an incomplete download: no mp4, files removed."""
    job = cdn.job(workdir, duration_s=1200)
    result = await downloader().download(job, Recorder())
    assert isinstance(result, Failure)
    assert "incomplete" in result.reason
    assert not job.mp4.exists()
    assert not job.directory.exists()


async def test_a_stopped_download_resumes_from_its_fragments(cdn: Cdn, workdir: Path) -> None:
    """Stopped halfway, the next attempt fetches only what is missing and ends with a correct file."""
    job = cdn.job(workdir)
    cdn.fake.throttle_bps = 4_000_000
    halfway = asyncio.Event()

    async def watch(progress: Progress) -> None:
        if (progress.percent or 0) >= 50:
            halfway.set()

    first = asyncio.create_task(downloader().download(job, watch))
    await asyncio.wait_for(halfway.wait(), 60)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    served_first = cdn.fake.bytes_served
    cdn.fake.reset()
    result = await downloader().download(job, Recorder())
    assert isinstance(result, Downloaded), result
    assert cdn.fake.bytes_served < cdn.vod.total_bytes * 0.7
    assert 0 < result.fetched_bytes < cdn.vod.total_bytes
    assert served_first + cdn.fake.bytes_served >= cdn.vod.total_bytes
    assert abs(result.duration_s - cdn.vod.duration_s) < 2
    assert result.streamed  # the fragments already on disk went through the pipe first


def ytdlp_processes(marker: Path) -> list[int]:
    """Running yt-dlp processes writing under `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = process.cmdline(int(entry))
            if "vodarchiver.media.ytdlp_main" in argv and any(str(marker) in a for a in argv):
                found.append(int(entry))
    return found


async def test_cancelling_stops_yt_dlp_at_once(cdn: Cdn, workdir: Path) -> None:
    """Cancelling a download kills its yt-dlp process within two seconds."""
    job = cdn.job(workdir)
    cdn.fake.throttle_bps = 500_000
    started = asyncio.Event()

    async def watch(_: Progress) -> None:
        started.set()

    task = asyncio.create_task(downloader().download(job, watch))
    await asyncio.wait_for(started.wait(), 30)
    assert ytdlp_processes(job.directory)
    begin = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - begin < 2.0
    assert ytdlp_processes(job.directory) == []
