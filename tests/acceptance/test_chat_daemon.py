"""The daemon as a process recording chat from the fake Twitch IRC server, as an operator sees it."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

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
