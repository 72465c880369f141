"""yt-dlp killed with SIGKILL over and over, resumed each time, ends with a byte-exact file."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.fakes.cdn import FakeCdn
from tests.fakes.server import LocalServer
from tests.media import make_hls
from vodarchiver import process
from vodarchiver.media import ytdlp

KILLS = 4


async def test_repeated_sigkills_never_corrupt_the_resumed_file(tmp_path: Path) -> None:
    """Killed four times mid-download (fragments in flight, appends, index writes), each resume continues exactly: the TS equals the segments joined."""
    vod = make_hls(240)
    cdn = FakeCdn(throttle_bps=400_000)
    expected = b"".join((vod.directory / name).read_bytes() for name in vod.segment_names())
    # Each run fetches about six fragments' worth before its kill: with four in flight, some are
    # appended and some are lost mid-way, every time.
    step = 6 * vod.total_bytes // vod.segments
    out = tmp_path / "v.ts"
    async with LocalServer(cdn) as server:
        url = f"{server.url}{cdn.add('v', vod)}"
        for _ in range(KILLS):
            progressed = cdn.when_served(step)  # kill once this run has fetched another slice
            proc = await process.start(
                ytdlp.argv(url, out, fragments=4, retries=3, retry_sleep=(0.05, 0.1)),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.wait_for(progressed.wait(), 30)
            await process.terminate(proc, ladder=((signal.SIGKILL, 5.0),))
        cdn.reset()
        last = await process.start(ytdlp.argv(url, out, fragments=4, retries=3, retry_sleep=(0.05, 0.1)),
                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)  # fmt: skip
        assert await asyncio.wait_for(last.wait(), 60) == 0
    assert cdn.bytes_served < vod.total_bytes  # the last run resumed rather than starting over
    assert out.read_bytes() == expected


def _read_all(fd: int) -> bytes:
    """Everything written into a pipe until its last writer closes it."""
    chunks = []
    with open(fd, "rb", closefd=True) as fh:
        while chunk := fh.read(1 << 20):
            chunks.append(chunk)
    return b"".join(chunks)


async def _teed_run(
    url: str, out: Path, kill_after: asyncio.Event | None
) -> tuple[bytes, list[str]]:
    """One yt-dlp run writing into a pipe as well: what the pipe carried, and its output lines."""
    read_fd, write_fd = os.pipe()
    try:
        proc = await process.start(
            ytdlp.argv(url, out, fragments=4, retries=3, retry_sleep=(0.05, 0.1), tee_fd=write_fd),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            pass_fds=(write_fd,),
        )  # fmt: skip
    finally:
        os.close(write_fd)
    carried = asyncio.create_task(asyncio.to_thread(_read_all, read_fd))
    assert proc.stdout is not None
    if kill_after is not None:
        await asyncio.wait_for(kill_after.wait(), 30)
        await process.terminate(proc, ladder=((signal.SIGKILL, 5.0),))
        return await carried, []
    lines = (await proc.stdout.read()).decode().splitlines()
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    return await carried, lines


async def test_the_pipe_into_the_remux_carries_exactly_the_file_across_sigkills(
    tmp_path: Path,
) -> None:
    """Killed twice with a pipe attached, each run's pipe carries a prefix of the source; the last carries it all and says so."""
    vod = make_hls(240)
    cdn = FakeCdn(throttle_bps=400_000)
    expected = b"".join((vod.directory / name).read_bytes() for name in vod.segment_names())
    step = 6 * vod.total_bytes // vod.segments
    out = tmp_path / "v.ts"
    async with LocalServer(cdn) as server:
        url = f"{server.url}{cdn.add('v', vod)}"
        for _ in range(2):
            carried, _lines = await _teed_run(url, out, cdn.when_served(step))
            assert expected.startswith(carried)
        cdn.reset()
        carried, lines = await _teed_run(url, out, None)
    assert cdn.bytes_served < vod.total_bytes  # resumed: the pipe got the earlier part from disk
    assert carried == expected
    assert out.read_bytes() == expected
    assert f"{ytdlp.TEE_COMPLETE}{len(expected)}" in lines
