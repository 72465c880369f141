"""Chat across replicas: how long a channel goes unrecorded when its recording replica dies.

Two daemons (`vodarchiver run`, as processes) record TWITCH_CHANNEL from the fake IRC server on
one PostgreSQL; the server sends RATE lines a second to every joined connection. The replica
holding the channel's lease is stopped, and the figure is the time from the stop to the other
replica's JOIN as the server sees it, printed against CHAT_LEASE (the ratio gap / lease), with
the lines sent meanwhile that no replica stored. Cases:
  SIGKILL, CHAT_LEASE=2s and 6s (the default): the lease must run out first;
  SIGTERM, 6s: a clean stop deletes the lease, the other takes it at its next pass;
  SIGKILL with CHAT_REDUNDANCY=2: the other replica was connected all along.
`python -m bench.chat_takeover` runs it alone; `make bench` runs it after bench/chat.py's figures.

BENCH notes (2026-12-06, this 2-core machine shared with other sessions, PostgreSQL 15; median of
3 runs, min-max):
    SIGKILL CHAT_LEASE=2s                     gap 1.75 s (1.49-2.03)  0.87x the lease, 332 lines lost
    SIGKILL CHAT_LEASE=6s (default)           gap 4.45 s (4.27-4.49)  0.74x the lease, 866 lines lost
    SIGTERM CHAT_LEASE=6s                     gap 1.07 s (1.07-1.09)  0.18x the lease, 200 lines lost
    SIGKILL CHAT_LEASE=6s CHAT_REDUNDANCY=2   no gap, 0 lines lost
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import time
from pathlib import Path

import psycopg

from bench.common import admin_database, drop_db, external_server, open_dir
from tests.daemon import Daemon, base_env
from tests.fakes.irc import FakeIrc

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
RATE = 200  # lines a second
TICK_S = 0.01


def line(i: int) -> str:
    """A PRIVMSG with id t<i>."""
    return (f"@id=t{i};tmi-sent-ts={int(time.time() * 1000)};user-id=1 "
            f":bob!bob@bob.tmi.twitch.tv PRIVMSG #alice :hello {i}")  # fmt: skip


async def stored_ids(url: str) -> set[str]:
    """Ids in chat_messages."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (await conn.execute("SELECT msg_id FROM chat_messages")).fetchall()
    return {str(r[0]) for r in rows}


class Chatter:
    """Sends RATE lines a second to every joined connection; remembers when each was sent."""

    def __init__(self, irc: FakeIrc) -> None:
        self.irc = irc
        self.sent: dict[int, float] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start chatting."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop chatting."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            batch = [line(n) for n in range(i, i + max(1, int(RATE * TICK_S)))]
            await self.irc.send("alice", batch)
            now = time.monotonic()
            for n in range(i, i + len(batch)):
                self.sent[n] = now
            i += len(batch)
            await asyncio.sleep(TICK_S)

    async def lost_since(self, url: str, since: float) -> int:
        """Lines sent after `since` that no replica stored (once the last one sent is stored)."""
        last_sent = max(self.sent.values())
        ids: set[str] = set()
        for _ in range(100):  # until the survivor's writer has committed what it received
            ids = await stored_ids(url)
            if any(f"t{n}" in ids for n, at in self.sent.items() if at >= last_sent):
                break
            await asyncio.sleep(0.05)
        return sum(1 for n, at in self.sent.items() if at >= since and f"t{n}" not in ids)


def replica(url: str, irc: FakeIrc, data_dir: Path, lease: str, redundancy: int) -> Daemon:
    """One daemon recording TWITCH_CHANNEL=alice."""
    return Daemon(
        base_env(
            DATABASE_URL=url,
            TWITCH_CHANNEL="alice",
            TWITCH_IRC_URL=irc.ws_url,
            MAX_CONCURRENT_DOWNLOADS="0",
            CHAT_LEASE=lease,
            LOG_LEVEL="info",
            CHAT_REDUNDANCY=str(redundancy),
            DATA_DIR=str(data_dir),
        )
    )


async def one_run(admin_url: str, *, lease: str, sig: int, redundancy: int) -> tuple[float, int]:
    """One handover: (seconds from the stop to the successor's JOIN, lines lost)."""
    name, url = await admin_database(admin_url, "takeover")
    irc = await FakeIrc().start()
    dirs = [open_dir("chat-a"), open_dir("chat-b")]
    first, second = (replica(url, irc, d, lease, redundancy) for d in dirs)
    chatter = Chatter(irc)
    try:
        await first.start()
        await first.wait_for("chat_joined", channel="alice", timeout=60)
        await second.start()
        await second.wait_for("chat_enabled", timeout=60)  # its lease passes run from here on
        if redundancy > 1:
            await irc.wait_joined("alice", count=2, timeout=60)
        chatter.start()
        await asyncio.sleep(1.0)  # some chat before the stop (pacing, not synchronisation)
        joins_before = len([c for c in irc.clients if c.joined == "alice"])
        first.send(sig)
        stopped_at = time.monotonic()
        gap = 0.0  # with CHAT_REDUNDANCY=2 the survivor never left
        if redundancy == 1:
            await irc.wait_joined("alice", count=joins_before + 1, timeout=60)
            gap = time.monotonic() - stopped_at
        await first.wait_exit(timeout=30)
        await asyncio.sleep(1.5)  # chat after the handover
        await chatter.stop()
        # A SIGKILL may lose what the holder had not committed (at most CHAT_FLUSH_INTERVAL):
        # count only lines sent after the stop.
        return gap, await chatter.lost_since(url, stopped_at)
    finally:
        await chatter.stop()
        for daemon in (first, second):
            await daemon.stop()
        await irc.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        await drop_db(admin_url, name)


async def main(admin_url: str) -> None:
    """Every case, RUNS times; median gap (min-max) and its ratio to the lease."""
    print(f"\nchat takeover: two daemons, {RATE} lines/s, {RUNS} runs, median (min-max)")
    cases = [("SIGKILL", "2s", signal.SIGKILL, 1), ("SIGKILL", "6s", signal.SIGKILL, 1),
             ("SIGTERM", "6s", signal.SIGTERM, 1), ("SIGKILL", "6s", signal.SIGKILL, 2)]  # fmt: skip
    for label, lease, sig, redundancy in cases:
        gaps, losses = [], []
        for _ in range(RUNS):
            gap, lost = await one_run(admin_url, lease=lease, sig=sig, redundancy=redundancy)
            gaps.append(gap)
            losses.append(lost)
        lease_s = float(lease.removesuffix("s"))
        median = statistics.median(gaps)
        print(f"  {label:7} CHAT_LEASE={lease:3} CHAT_REDUNDANCY={redundancy}: gap "
              f"{median:5.2f} s ({min(gaps):.2f}-{max(gaps):.2f}), {median / lease_s:.2f}x the "
              f"lease; lines lost after the stop {statistics.median(losses):.0f} "
              f"({min(losses)}-{max(losses)})")  # fmt: skip


async def _alone() -> None:
    async with external_server() as admin_url:
        await main(admin_url)


if __name__ == "__main__":
    asyncio.run(_alone())
