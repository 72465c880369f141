"""The chat stage end to end in one process: fake Helix, fake IRC, real discovery and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import psycopg_pool
import pytest

from tests.conftest import ManualClock, logged
from tests.fakes.irc import FakeIrc
from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch, twitch_time
from vodarchiver.db.chat_lease_store import ChatLeaseStore
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.store import Store
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.chat import ChatCheck, ChatStage
from vodarchiver.pipeline.chat_leases import ChatLeases
from vodarchiver.pipeline.chat_writer import ChatWriter
from vodarchiver.pipeline.discovery import Discovery
from vodarchiver.pipeline.leased import Owner
from vodarchiver.twitch.auth import AppToken
from vodarchiver.twitch.chat import ChatRecorder, Credentials, Timing
from vodarchiver.twitch.helix import HelixClient, RetryPolicy
from vodarchiver.values import Secret, parse_irc_url

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)
GRACE_S = 120.0


def privmsg(msg_id: str, sent: datetime) -> str:
    """A PRIVMSG line sent at `sent`."""
    return (f"@id={msg_id};tmi-sent-ts={int(sent.timestamp() * 1000)};user-id=5;display-name=Bob "
            f":bob!bob@bob.tmi.twitch.tv PRIVMSG #alice :hello {msg_id}")  # fmt: skip


@dataclass
class Rig:
    """Fakes, the stage under test, and discovery to make VODs appear."""

    twitch: FakeTwitch
    irc: FakeIrc
    stage: ChatStage
    discovery: Discovery
    clock: ManualClock
    db_url: str
    writer_task: asyncio.Task[None]

    async def written(self, count: int) -> None:
        """Wait until the writer committed `count` rows in all."""
        writer = self.stage.writer
        async with asyncio.timeout(30), writer.committed:
            await writer.committed.wait_for(lambda: writer.written >= count)

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query."""
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            return await (await conn.execute(sql)).fetchall()


@pytest.fixture
async def rig(log_lines: io.StringIO, db_url: str, open_dir: Path) -> AsyncIterator[Rig]:
    """Everything wired as app.py does, with a manual clock for the offline grace (logs captured first)."""
    twitch = FakeTwitch()
    twitch.add_channel("alice")
    irc = await FakeIrc().start()
    metrics = Metrics("test")
    clock = ManualClock(T0)
    async with (
        LocalServer(twitch) as server,
        httpx.AsyncClient(timeout=5) as http,
        psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as pool,
    ):
        token = AppToken(http, auth_url=f"{server.url}/oauth2", client_id=twitch.client_id,
                         client_secret=Secret("fake-client-secret"), metrics=metrics)  # fmt: skip
        helix = HelixClient(http, token, api_url=f"{server.url}/helix", client_id=twitch.client_id,
                            metrics=metrics, retry=RetryPolicy(base_s=0.01, cap_s=0.05))  # fmt: skip
        writer = ChatWriter(ChatStore(pool), metrics, flush_interval_s=0.1)

        async def anonymous() -> Credentials:
            return Credentials("justinfan1", None)

        def recorder(channel: str) -> ChatRecorder:
            return ChatRecorder(channel, endpoint=parse_irc_url(irc.ws_url), credentials=anonymous,
                                sink=writer.add, metrics=metrics,
                                timing=Timing(backoff_base_s=0.05, backoff_cap_s=0.1))  # fmt: skip

        leases = ChatLeases(ChatLeaseStore(pool), Owner(open_dir), lease_s=6, slots=1)
        stage = ChatStage(channels=["alice"], auto_start=True, helix=helix, store=ChatStore(pool),
                          writer=writer, metrics=metrics, recorder=recorder, leases=leases,
                          poll_interval_s=30,
                          grace_s=GRACE_S, window_s=900, clock=clock)  # fmt: skip
        discovery = Discovery(helix, Store(pool), metrics, channels=["alice"],
                              retention_overrides={}, interval_s=300)  # fmt: skip
        writer_task = asyncio.create_task(writer.run_forever())
        try:
            yield Rig(twitch, irc, stage, discovery, clock, db_url, writer_task)
        finally:
            for channel in list(stage.recorders):
                await stage.stop_recorder(channel)
            writer_task.cancel()
            await asyncio.gather(writer_task, return_exceptions=True)
            await irc.stop()


async def record_stream(
    rig: Rig,
    *,
    stream_id: str,
    start: datetime,
    vod_lead_s: int,
    msg_ids: list[str],
    written_before: int,
) -> None:
    """Go live, chat, survive a flapping answer, go offline for the grace: the recorder stops."""
    rig.twitch.go_live("alice", stream_id=stream_id, started_at=start)
    # The archive's clock starts a little before the stream's (its own created_at).
    rig.twitch.live_vod("alice")["created_at"] = twitch_time(start - timedelta(seconds=vod_lead_s))
    rig.clock.now = start + timedelta(seconds=5)
    await rig.stage.poll_once()
    assert "alice" in rig.stage.recorders
    client = await rig.irc.wait_joined(
        "alice", count=len([c for c in rig.irc.clients if c.joined]) + 1
    )
    await client.send(
        [privmsg(m, start + timedelta(seconds=10 * (i + 1))) for i, m in enumerate(msg_ids)]
    )
    await rig.written(written_before + len(msg_ids))
    assert (await ChatCheck(rig.stage).check()).ok
    rig.twitch.streams_offline_next = 1  # one flapping answer
    rig.clock.now += timedelta(seconds=30)
    await rig.stage.poll_once()
    rig.clock.now += timedelta(seconds=30)
    await rig.stage.poll_once()
    assert "alice" in rig.stage.recorders
    rig.twitch.end_stream("alice")
    rig.clock.now += timedelta(seconds=30)
    await rig.stage.poll_once()
    assert "alice" in rig.stage.recorders  # offline once: not yet
    rig.clock.now += timedelta(seconds=GRACE_S)
    await rig.stage.poll_once()
    assert "alice" not in rig.stage.recorders


async def test_live_offline_vod_appears_then_a_second_stream_the_same_day(
    rig: Rig, log_lines: io.StringIO
) -> None:
    """Each placeholder is reconciled into its own VOD with offsets shifted to the VOD's start."""
    await record_stream(
        rig, stream_id="s1", start=T0, vod_lead_s=4, msg_ids=["a1", "a2"], written_before=0
    )
    assert await rig.rows("SELECT msg_id, vod_id, offset_ms FROM chat_messages ORDER BY msg_id") == [
        ("a1", None, 10_000), ("a2", None, 20_000)]  # fmt: skip
    await rig.stage.reconcile_once()  # no VOD known yet: nothing moves
    assert (await rig.stage.status())["unreconciled_placeholders"][0]["stream_id"] == "s1"

    await rig.discovery.run_pass()
    await rig.stage.reconcile_once()
    await rig.stage.reconcile_once()  # idempotent
    vods = dict(await rig.rows("SELECT stream_id, id FROM vods"))
    assert await rig.rows("SELECT msg_id, vod_id, offset_ms FROM chat_messages ORDER BY msg_id") == [
        ("a1", vods["s1"], 14_000), ("a2", vods["s1"], 24_000)]  # fmt: skip
    assert len(logged(log_lines, "chat_reconciled")) == 1

    second = T0 + timedelta(hours=5)
    await record_stream(
        rig, stream_id="s2", start=second, vod_lead_s=2, msg_ids=["b1"], written_before=2
    )
    await rig.discovery.run_pass()
    await rig.stage.reconcile_once()
    vods = dict(await rig.rows("SELECT stream_id, id FROM vods"))
    found = await rig.rows("SELECT msg_id, vod_id, offset_ms FROM chat_messages ORDER BY msg_id")
    assert found == [
        ("a1", vods["s1"], 14_000),
        ("a2", vods["s1"], 24_000),
        ("b1", vods["s2"], 12_000),
    ]
    status = await rig.stage.status()
    assert status["unreconciled_placeholders"] == []
    assert status["overdue_placeholders"] == 0
    assert await rig.rows("SELECT stream_id, reconciled_at IS NOT NULL FROM chat_streams ORDER BY 1") == [
        ("s1", True), ("s2", True)]  # fmt: skip


async def test_an_unreconciled_placeholder_is_reported_after_the_window(
    rig: Rig, log_lines: io.StringIO
) -> None:
    """A stream whose archive never appears is listed by status() and counted as overdue once the window passed."""
    await record_stream(
        rig, stream_id="s9", start=T0, vod_lead_s=0, msg_ids=["z1"], written_before=0
    )
    rig.twitch.delete_vod(rig.twitch.channel("alice").videos[0]["id"])
    async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as conn:
        await conn.execute("UPDATE chat_streams SET ended_at = now() - interval '16 minutes'")
    await rig.stage.reconcile_once()
    status = await rig.stage.status()
    assert status["overdue_placeholders"] == 1
    assert status["unreconciled_placeholders"][0]["messages"] == 1
    assert logged(log_lines, "chat_placeholder_unreconciled")[0]["stream_id"] == "s9"
