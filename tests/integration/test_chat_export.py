"""Exporting a VOD's chat: the paged route and the `vodarchiver chat export` command."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import psycopg_pool
import pytest

from vodarchiver.db.chat_store import ChatRow, ChatStore
from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.uploads import UploadStore
from vodarchiver.metrics import Metrics
from vodarchiver.twitch.irc import ChatEvent
from vodarchiver.web import Api, build_app

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


async def seed(db_url: str, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
    """VOD v1 whose placeholder s1 holds 7 messages (one deleted), reconciled with a 1 s shift."""
    chat = ChatStore(pool)
    await chat.stream_open("s1", "alice", T0)
    events = [ChatEvent(f"m{i}", "PRIVMSG", "alice", int((T0 + timedelta(seconds=i)).timestamp() * 1000),
                        "1", "bob", "Bob", f"line {i}", False, None, None, None, None, "emotes=")
              for i in range(7)]  # fmt: skip
    await chat.write([ChatRow(e, "s1") for e in events])
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cur = await conn.execute("INSERT INTO vods (twitch_vod_id, channel, stream_id, date, state) "
                                 "VALUES ('v1', 'alice', 's1', %s, 'queued') RETURNING id", [T0 - timedelta(seconds=1)])  # fmt: skip
        row = await cur.fetchone()
        assert row is not None
        await conn.execute("UPDATE chat_messages SET deleted = true WHERE msg_id = 'm3'")
    assert await chat.reconcile("s1", int(row[0]), 1000) == 7


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[psycopg_pool.AsyncConnectionPool[Any]]:
    """A pool over this test's database, seeded."""
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as p:
        await seed(db_url, p)
        yield p


async def test_chat_route_pages_through_a_window_of_the_vod(
    pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str
) -> None:
    """`from`/`to` are seconds into the VOD; `next` walks the pages; unknown VODs are 404."""
    metrics = Metrics("t")
    probe = DatabaseProbe(db_url)
    api = Api(store=UploadStore(pool), probe=probe, metrics=metrics, checks=[], version="t",
              started_at=T0, chat=ChatStore(pool))  # fmt: skip
    transport = httpx.ASGITransport(app=build_app(api, metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        first = (
            await client.get("/vods/v1/chat", params={"from": "2", "to": "6", "limit": "2"})
        ).json()
        assert [m["id"] for m in first["items"]] == ["m1", "m2"]
        assert first["items"][0]["offset_ms"] == 2000
        second = (await client.get("/vods/v1/chat", params={"from": "2", "to": "6", "limit": "2",
                                                            "after": first["next"]})).json()  # fmt: skip
        assert [(m["id"], m["deleted"]) for m in second["items"]] == [("m3", True), ("m4", False)]
        assert (await client.get("/vods/nope/chat")).status_code == 404
        assert (await client.get("/vods/v1/chat", params={"after": "junk"})).status_code == 400
    await probe.aclose()


@pytest.mark.parametrize(("fmt", "expected"), [
    ("srt", "1\n00:00:01,000 --> 00:00:06,000\nBob: line 0\n\n"),
    ("ndjson", '"id": "m0"'),
    ("json", '"offset_ms": 7000'),
    ("ass", "Dialogue: 0,0:00:01.00,0:00:06.00,Chat,,0,0,0,,Bob: line 0"),
])  # fmt: skip
async def test_chat_export_command(
    pool: psycopg_pool.AsyncConnectionPool[Any],
    db_url: str,
    tmp_path: Path,
    fmt: str,
    expected: str,
) -> None:
    """`vodarchiver chat export v1 --format F` prints the chat timed to the VOD; subtitles skip the deleted line."""
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": db_url, "ENV_FILE": os.devnull,
           "LOG_FORMAT": "json", "DATA_DIR": str(tmp_path)}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vodarchiver", "chat", "export", "v1", "--format", fmt,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert expected in text
    if fmt in ("srt", "ass"):
        assert "line 3" not in text
        assert "line 6" in text
