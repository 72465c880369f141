"""The daemon as a process recording chat from the fake Twitch IRC server, as an operator sees it."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from tests.conftest import make_open_dir
from tests.daemon import Daemon, base_env, get
from tests.fakes.irc import FakeIrc


@pytest.fixture
async def irc() -> AsyncIterator[FakeIrc]:
    """A running fake IRC server."""
    server = await FakeIrc().start()
    yield server
    await server.stop()


def line(i: int) -> str:
    """A PRIVMSG with id k<i>."""
    return (f"@id=k{i};tmi-sent-ts={int(time.time() * 1000)};user-id=1 "
            f":bob!bob@bob.tmi.twitch.tv PRIVMSG #alice :hello {i}")  # fmt: skip


async def stored(db_url: str) -> set[str]:
    """Ids in chat_messages."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        return {
            str(r[0])
            for r in await (await conn.execute("SELECT msg_id FROM chat_messages")).fetchall()
        }


async def count_at_least(db_url: str, n: int) -> bool:
    """Whether chat_messages holds at least n rows."""
    return len(await stored(db_url)) >= n


async def until(what: str, check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    """Poll an observable condition until it holds; fail after `within` seconds."""
    begin = time.monotonic()
    while not await check():
        assert time.monotonic() - begin < within, f"not within {within}s: {what}"
        await asyncio.sleep(0.05)


async def test_runbook_form_records_and_a_sigkill_loses_at_most_the_last_second(
    irc: FakeIrc, db_url: str
) -> None:
    """TWITCH_CHANNEL with a bot token: joined, /readyz says so, the token is never logged; after SIGKILL only the last second may be missing."""
    env = base_env(DATABASE_URL=db_url, TWITCH_CHANNEL="alice", TWITCH_IRC_URL=irc.ws_url,
                   TWITCH_BOT_USERNAME="mybot", TWITCH_OAUTH_TOKEN="oauth:tok-sekrit-42",
                   MAX_CONCURRENT_DOWNLOADS="0")  # fmt: skip
    daemon = await Daemon(env).start()
    try:
        base = await daemon.started()
        await daemon.wait_for("chat_joined", channel="alice")
        ready = (await get(f"{base}/readyz")).json()
        assert ready["checks"]["chat"] == {"ok": True, "detail": "recording alice"}
        client = irc.joined("alice")[-1]
        sent_at: dict[int, float] = {}
        for i in range(1000):
            await client.send([line(i)])
            sent_at[i] = time.monotonic()
        # Keep chatting; every line sent more than a second before the kill must be stored.
        i = 1000
        while time.monotonic() - sent_at[999] < 2.5:
            await client.send([line(i)])
            sent_at[i] = time.monotonic()
            i += 1
            await asyncio.sleep(0.005)
        daemon.send(signal.SIGKILL)
        killed_at = time.monotonic()
        await daemon.wait_exit()
    finally:
        await daemon.stop()
    ids = await stored(db_url)
    due = {f"k{n}" for n, at in sent_at.items() if at < killed_at - 1.0}
    assert len(due) > 1000
    assert due <= ids, sorted(due - ids)[:5]
    assert ("mybot", "tok-sekrit-42") in irc.logins
    assert "tok-sekrit-42" not in daemon.output


async def test_two_daemons_record_a_channel_once_and_a_sigkill_hands_it_over_within_the_lease(
    irc: FakeIrc, db_url: str
) -> None:
    """Two replicas, one connection to #alice, /status names the recorder; SIGKILL it and the other joins once the lease ran out (gap measured against CHAT_LEASE)."""
    lease_s = 2.0
    dirs = [make_open_dir("chat-a"), make_open_dir("chat-b")]
    daemons = [
        Daemon(
            base_env(
                DATABASE_URL=db_url,
                TWITCH_CHANNEL="alice",
                TWITCH_IRC_URL=irc.ws_url,
                MAX_CONCURRENT_DOWNLOADS="0",
                CHAT_LEASE=f"{lease_s}s",
                DATA_DIR=str(d),
            )
        )
        for d in dirs
    ]
    try:
        first, second = daemons
        await first.start()
        await first.wait_for("chat_joined", channel="alice")
        await second.start()
        base = await second.started()

        # The second replica's own /status names the first as the recorder, and it stays off.
        async def holders_named() -> bool:
            return bool((await get(f"{base}/status")).json()["chat"]["recorded_by"]["alice"])

        await until("/status names a recorder", holders_named)
        chat = (await get(f"{base}/status")).json()["chat"]
        holders = chat["recorded_by"]["alice"]
        assert [h["this_replica"] for h in holders] == [False]
        assert holders[0]["owner"].split(":")[1] == str(dirs[0].resolve())
        assert (chat["recorders"], chat["redundancy"], chat["lease_s"]) == ({}, 1, lease_s)
        ready = (await get(f"{base}/readyz")).json()
        assert ready["checks"]["chat"]["detail"] == "recorded by another replica: alice"
        assert len([c for c in irc.clients if c.joined == "alice"]) == 1
        # The console's channels page (and its JSON twin) says the same.
        item = (await get(f"{base}/ui/channels.json")).json()["items"][0]
        assert item["chat"] is None
        assert [h["owner"] for h in item["chat_recorded_by"]] == [holders[0]["owner"]]
        page = (await get(f"{base}/ui/channels")).text
        assert "recorded by another replica" in page
        await irc.send("alice", [line(i) for i in range(100)])
        await until("100 stored", lambda: count_at_least(db_url, 100))

        first.send(signal.SIGKILL)
        killed_at = time.monotonic()
        await first.wait_exit()
        await irc.wait_joined("alice", count=2, timeout=lease_s + 10)
        gap = time.monotonic() - killed_at
        await second.wait_for("chat_lease_taken", channel="alice")
        # At most the lease (renewed every third of it, so the kill came at most one third
        # after a renewal) plus a pass and a connection.
        assert gap <= lease_s + 2.0, f"takeover gap {gap:.2f}s after SIGKILL, CHAT_LEASE {lease_s}s"
        print(f"takeover gap after SIGKILL: {gap:.3f}s (CHAT_LEASE {lease_s}s)")
        await irc.send("alice", [line(i) for i in range(100, 150)])
        await until("150 stored", lambda: count_at_least(db_url, 150))
        chat = (await get(f"{base}/status")).json()["chat"]
        assert [h["this_replica"] for h in chat["recorded_by"]["alice"]] == [True]
        assert chat["recorders"]["alice"]["connected"] is True
    finally:
        for daemon in daemons:
            await daemon.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


async def test_a_restarted_daemon_takes_its_killed_predecessors_channel_at_once(
    irc: FakeIrc, db_url: str, open_dir: Path
) -> None:
    """SIGKILL, then a restart on the same host and DATA_DIR: it records again without waiting out the old lease."""
    env = base_env(DATABASE_URL=db_url, TWITCH_CHANNEL="alice", TWITCH_IRC_URL=irc.ws_url,
                   MAX_CONCURRENT_DOWNLOADS="0", CHAT_LEASE="10m", DATA_DIR=str(open_dir))  # fmt: skip
    first = await Daemon(env).start()
    try:
        await first.wait_for("chat_joined", channel="alice")
        first.send(signal.SIGKILL)
        await first.wait_exit()
    finally:
        await first.stop()
    again = await Daemon(env).start()
    try:
        released = await again.wait_for("chat_lease_released_previous", channel="alice")
        assert released["owner"].split(":")[1] == str(open_dir.resolve())
        await again.wait_for("chat_joined", channel="alice")
        await irc.wait_joined("alice", count=2)
    finally:
        await again.stop()
