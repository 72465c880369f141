"""yt-dlp killed with SIGKILL over and over, resumed each time, ends with a byte-exact file."""

from __future__ import annotations

import asyncio
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
