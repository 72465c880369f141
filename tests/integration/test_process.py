"""Stopping children within a bounded time, whatever they ignore."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from vodarchiver import process

STUBBORN = (
    "import signal, sys, time\n"
    "for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):\n"
    "    signal.signal(s, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


async def test_a_child_ignoring_every_polite_signal_is_killed_within_the_ladder() -> None:
    """terminate() escalates through the ladder and ends with SIGKILL, bounded by the ladder's sum."""
    proc = await process.start([sys.executable, "-c", STUBBORN], stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"ready\n"
    begin = time.monotonic()
    code = await process.terminate(proc, ladder=((signal.SIGINT, 0.3), (signal.SIGQUIT, 0.3)))
    elapsed = time.monotonic() - begin
    assert code == -signal.SIGKILL
    assert 0.6 <= elapsed < 2.0


async def test_a_polite_child_stops_at_the_first_rung() -> None:
    """A child that honours SIGINT exits on it, without waiting for the rest of the ladder."""
    proc = await process.start([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                               stdout=asyncio.subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"ready\n"
    begin = time.monotonic()
    code = await process.terminate(proc, ladder=((signal.SIGINT, 5.0), (signal.SIGQUIT, 5.0)))
    assert code != -signal.SIGKILL
    assert time.monotonic() - begin < 2.0


async def test_wait_gone_follows_a_process_we_did_not_start() -> None:
    """wait_gone returns True once an unrelated process exits and False while it still runs."""
    proc = await process.start([sys.executable, "-c", "import time; time.sleep(60)"])
    assert await process.wait_gone(proc.pid, 0.2) is False
    proc.kill()
    assert await process.wait_gone(proc.pid, 5.0) is True
    await proc.wait()
