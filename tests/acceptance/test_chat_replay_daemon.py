"""The daemon as a process replaying a VOD's chat from the fake GQL, killed midway and restarted."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest

from tests.daemon import Daemon, base_env, get
from tests.fakes.gql import COMMENTS_OP, FakeGql
from tests.fakes.server import LocalServer


@pytest.fixture
async def gql() -> AsyncIterator[tuple[FakeGql, LocalServer]]:
    """A fake GQL holding VOD 3001 with 3,000 messages over an hour, answering in 20 ms."""
    fake = FakeGql()
    fake.add_video("3001", length_s=3600)
    fake.script_chat("3001", 3000)
    fake.latency_s = 0.02
    async with LocalServer(fake) as server:
        yield fake, server


async def _sql(db_url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cur = await conn.execute(sql, list(params))
        return await cur.fetchall() if cur.description else []


async def test_sigkill_mid_replay_resumes_from_the_last_stored_point(
    gql: tuple[FakeGql, LocalServer], db_url: str
) -> None:
    """SIGKILL after 10 pages: the next run starts at the stored cursor and the chat ends whole, each message once."""
    fake, server = gql
    await _sql(db_url, "INSERT INTO vods (twitch_vod_id, channel, date, duration_s, state) "
                       "VALUES ('3001', 'alice', %s, 3600, 'queued')",
               datetime(2026, 12, 1, 20, 0, tzinfo=UTC))  # fmt: skip
    env = base_env(DATABASE_URL=db_url, TWITCH_GQL_URL=server.url, CHAT_REPLAY_INTERVAL="0",
                   MAX_CONCURRENT_DOWNLOADS="0")  # fmt: skip
    first = await Daemon(env).start()
    try:
        await first.wait_for("chat_replay_enabled")
        await asyncio.wait_for(fake.wait_for_requests(10), 30)
        first.send(signal.SIGKILL)
        await first.wait_exit()
    finally:
        await first.stop()
    ((pages, cursor, stored),) = await _sql(
        db_url, "SELECT r.pages, r.cursor, (SELECT count(*) FROM chat_messages) FROM chat_replays r"
    )
    assert 5 <= int(pages) < 60, "killed mid-replay"  # type: ignore[call-overload]
    assert stored == 50 * int(pages)  # type: ignore[call-overload]
    fake.reset()
    second = await Daemon(env).start()
    try:
        base = await second.started()
        await second.wait_for("chat_replay_done", timeout=60)
        shown = (await get(f"{base}/vods/3001")).json()
        assert shown["chat_coverage"]["coverage"] == 1.0
        assert shown["chat_coverage"]["replay"]["state"] == "done"
        assert shown["chat_coverage"]["replay"]["messages"] == 3000
        assert shown["chat_coverage"]["gaps"] == []
        metrics = (await get(f"{base}/metrics")).text
        assert 'vodarchiver_chat_coverage_ratio{channel="alice"} 1.0' in metrics
    finally:
        second.send(signal.SIGTERM)
        await second.wait_exit()
        await second.stop()
    requests = [r for r in fake.received if r.operation == COMMENTS_OP]
    assert requests[0].variables == {"videoID": "3001", "cursor": cursor}
    assert len(requests) == 60 - int(pages)  # type: ignore[call-overload]
    assert await _sql(db_url, "SELECT count(*), count(DISTINCT msg_id) FROM chat_messages") == [
        (3000, 3000)
    ]
    assert (await _sql(db_url, "SELECT state FROM chat_replays"))[0][0] == "done"
