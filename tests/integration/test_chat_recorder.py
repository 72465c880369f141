"""The chat recorder against the fake Twitch IRC server, writing into a real PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import psycopg_pool
import pytest

from tests.conftest import logged
from tests.fakes.irc import FakeIrc
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.chat_writer import ChatWriter
from vodarchiver.twitch.chat import ChatRecorder, Credentials, Timing
from vodarchiver.values import Secret, parse_irc_url

FAST = Timing(keepalive_s=5, dead_after_s=10, login_timeout_s=5, backoff_base_s=0.05,
              backoff_cap_s=0.2, login_retry_s=0.1)  # fmt: skip
T0_MS = 1_790_000_000_000


def privmsg(i: int, channel: str = "alice") -> str:
    """A Twitch PRIVMSG line with id m<i>."""
    return (f"@badges=;color=#FF0000;display-name=U{i % 97};emotes=;id=m{i};room-id=1;"
            f"tmi-sent-ts={T0_MS + i};user-id={i % 97} "
            f":u{i % 97}!u{i % 97}@u{i % 97}.tmi.twitch.tv PRIVMSG #{channel} :message number {i}")  # fmt: skip


@pytest.fixture
async def fake() -> AsyncIterator[FakeIrc]:
    """A running fake IRC server."""
    server = await FakeIrc().start()
    yield server
    await server.stop()


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[psycopg_pool.AsyncConnectionPool[Any]]:
    """A pool over this test's database."""
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as p:
        yield p


class Harness:
    """A recorder and its writer, running as tasks."""

    def __init__(self, url: str, pool: psycopg_pool.AsyncConnectionPool[Any],
                 creds: Callable[[], Credentials] | None = None) -> None:  # fmt: skip
        self.metrics = Metrics("test")
        self.writer = ChatWriter(ChatStore(pool), self.metrics, flush_interval_s=0.2)
        self.creds = creds or (lambda: Credentials("justinfan1", None))

        async def credentials() -> Credentials:
            return self.creds()

        self.recorder = ChatRecorder("alice", endpoint=parse_irc_url(url), credentials=credentials,
                                     sink=self.writer.add, metrics=self.metrics, timing=FAST)  # fmt: skip
        self.tasks = [asyncio.create_task(self.writer.run_forever()),
                      asyncio.create_task(self.recorder.run())]  # fmt: skip

    async def written(self, count: int, timeout: float = 90.0) -> None:
        """Wait until `count` new rows were committed."""
        async with asyncio.timeout(timeout), self.writer.committed:
            await self.writer.committed.wait_for(lambda: self.writer.written >= count)

    async def stop(self) -> None:
        """Cancel both tasks."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def ids_in(db_url: str) -> list[str]:
    """Every stored msg_id."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT msg_id FROM chat_messages")
        return [str(r[0]) for r in await cur.fetchall()]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("transport", ["ws", "tcp"])
async def test_100k_messages_with_a_drop_and_a_reconnect_are_stored_exactly_once(
    fake: FakeIrc, pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str, transport: str
) -> None:
    """A forced disconnect and a RECONNECT with 1,000 lines replayed each time: every id once, none lost."""
    lines = [privmsg(i) for i in range(100_000)]
    fake.replay = 1_000
    harness = Harness(fake.ws_url if transport == "ws" else fake.tcp_url, pool)
    try:
        await fake.play("alice", lines, drop_at=30_000, reconnect_at=70_000)
        await harness.written(100_000)
    finally:
        await harness.stop()
    stored = await ids_in(db_url)
    assert len(stored) == 100_000
    assert set(stored) == {f"m{i}" for i in range(100_000)}
    assert len([c for c in fake.clients if c.joined]) == 3  # first, after the drop, after RECONNECT
    assert harness.recorder.status.reconnections == 2
    assert harness.metrics.chat_reconnections._value.get() == 2
    assert sum(c.sent_lines for c in fake.clients) > 100_000  # duplicates were really sent


async def test_clearmsg_marks_and_clearchat_is_stored(
    fake: FakeIrc, pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str
) -> None:
    """A deleted message stays with deleted=true; a ban (CLEARCHAT) is a row of its own."""
    harness = Harness(fake.tcp_url, pool)
    try:
        await fake.wait_joined("alice")
        await fake.send("alice", [
            privmsg(1), privmsg(2),
            f"@login=u1;room-id=1;target-msg-id=m1;tmi-sent-ts={T0_MS + 5} :tmi.twitch.tv CLEARMSG #alice :message number 1",
            f"@ban-duration=600;room-id=1;target-user-id=2;tmi-sent-ts={T0_MS + 6} :tmi.twitch.tv CLEARCHAT #alice :u2",
        ])  # fmt: skip
        await harness.written(4)
    finally:
        await harness.stop()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT msg_id, kind, deleted FROM chat_messages ORDER BY msg_id")
        found = await cur.fetchall()
    assert found == [
        (f"clearchat:1:{T0_MS + 6}:2", "CLEARCHAT", False),
        ("clearmsg:m1", "CLEARMSG", False),
        ("m1", "PRIVMSG", True),
        ("m2", "PRIVMSG", False),
    ]


@pytest.mark.parametrize("transport", ["ws", "tcp"])
async def test_refused_login_is_reported_retried_and_the_token_never_logged(
    fake: FakeIrc,
    pool: psycopg_pool.AsyncConnectionPool[Any],
    log_lines: io.StringIO,
    transport: str,
) -> None:
    """A bad token: chat_login_failed, status and metric; a fixed token is picked up at the next try."""
    fake.valid_tokens = {"good-token"}
    token = {"value": "bad-token-123"}
    harness = Harness(fake.ws_url if transport == "ws" else fake.tcp_url, pool,
                      creds=lambda: Credentials("mybot", Secret(token["value"])))  # fmt: skip
    try:
        async with asyncio.timeout(30), fake.changed:
            await fake.changed.wait_for(lambda: len(fake.logins) >= 2)
        assert harness.recorder.status.login_failed == "Login authentication failed"
        assert harness.metrics.chat_login_failures.labels("alice")._value.get() >= 1
        token["value"] = "good-token"
        await fake.wait_joined("alice")
    finally:
        await harness.stop()
    assert ("mybot", "good-token") in fake.logins
    assert logged(log_lines, "chat_login_failed")
    assert "bad-token-123" not in log_lines.getvalue()
    assert "CAP REQ :twitch.tv/tags twitch.tv/commands" in fake.received


async def test_anonymous_login_and_a_dead_link_is_noticed(
    fake: FakeIrc, pool: psycopg_pool.AsyncConnectionPool[Any]
) -> None:
    """No token: justinfan without PASS. A server that stops answering is left after the keepalive."""
    fake.ignore_pings = True
    harness = Harness(fake.tcp_url, pool)
    harness.recorder._timing = Timing(keepalive_s=0.2, dead_after_s=0.4, backoff_base_s=0.05,
                                      backoff_cap_s=0.1)  # fmt: skip
    try:
        await fake.wait_joined("alice", count=2)
    finally:
        await harness.stop()
    assert fake.logins[0][0].startswith("justinfan")
    assert fake.logins[0][1] is None
    assert not any(line.startswith("PASS") for line in fake.received)
    assert "PING :vodarchiver" in fake.received


async def test_garbage_lines_are_counted_and_never_stop_the_recorder(
    fake: FakeIrc, pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str, log_lines: io.StringIO
) -> None:
    """Unparseable, id-less and oversized lines are rejected and logged truncated; recording goes on."""
    harness = Harness(fake.ws_url, pool)
    try:
        await fake.wait_joined("alice")
        await fake.send("alice", ["@@@ :::", ":x!x@x PRIVMSG #alice :no id", "\x01\x02",
                                  "@a=" + "x" * 40_000 + " PRIVMSG #alice :big", privmsg(7)])  # fmt: skip
        await harness.written(1)
    finally:
        await harness.stop()
    assert await ids_in(db_url) == ["m7"]
    assert harness.metrics.chat_lines_rejected._value.get() == 4
    (event,) = logged(log_lines, "chat_line_rejected")[:1]
    assert len(event["line"]) < 300
