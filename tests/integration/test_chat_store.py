"""Chat storage against a real PostgreSQL: de-duplication, deletions, placeholders, reconciliation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
import pytest

from vodarchiver.db.chat_store import ChatRow, ChatStore
from vodarchiver.db.store import Store
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline import chat_writer
from vodarchiver.pipeline.chat_writer import ChatWriter
from vodarchiver.twitch.irc import ChatEvent

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def ms(when: datetime) -> int:
    """Unix milliseconds of a time."""
    return int(when.timestamp() * 1000)


def message(msg_id: str, at: datetime, *, channel: str = "alice", text: str = "hi") -> ChatEvent:
    """A PRIVMSG event sent at `at`."""
    return ChatEvent(msg_id, "PRIVMSG", channel, ms(at), "1", "bob", "Bob", text, False, None,
                     "#FF0000", None, None, f"id={msg_id}")  # fmt: skip


def deletion(target: str, at: datetime) -> ChatEvent:
    """A CLEARMSG event deleting `target`."""
    return ChatEvent(f"clearmsg:{target}", "CLEARMSG", "alice", ms(at), None, "bob", None, "x",
                     False, None, None, None, target, f"target-msg-id={target}")  # fmt: skip


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[psycopg_pool.AsyncConnectionPool[Any]]:
    """A small pool over this test's database."""
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=3, open=False) as p:
        yield p


async def rows(db_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run a query on a fresh connection and return its rows."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cur = await conn.execute(sql, args)
        return await cur.fetchall()


async def add_vod(
    db_url: str, vod_id: str, stream_id: str | None, date: datetime, state: str = "live"
) -> int:
    """Insert a VOD row as discovery would; returns its row id."""
    found = await rows(
        db_url,
        "INSERT INTO vods (twitch_vod_id, channel, stream_id, date, duration_s, state) "
        "VALUES (%s, 'alice', %s, %s, 7200, %s) RETURNING id",
        vod_id, stream_id, date, state,
    )  # fmt: skip
    return int(found[0][0])


async def test_duplicates_are_stored_once_and_counted_by_channel(
    pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str
) -> None:
    """A batch with a repeated id, then the same ids again, leaves one row per id."""
    chat = ChatStore(pool)
    batch = [ChatRow(message("a", T0), None), ChatRow(message("a", T0), None),
             ChatRow(message("b", T0, channel="carol"), None)]  # fmt: skip
    first = await chat.write(batch)
    again = await chat.write(batch)
    assert first.inserted == {"alice": 1, "carol": 1}
    assert again.inserted == {}
    assert await rows(db_url, "SELECT count(*) FROM chat_messages") == [(2,)]


async def test_clearmsg_marks_its_message_deleted_in_the_same_or_a_later_batch(
    pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str
) -> None:
    """The deleted message stays, marked; the CLEARMSG itself is kept too."""
    chat = ChatStore(pool)
    result = await chat.write([ChatRow(message("m1", T0), None), ChatRow(deletion("m1", T0), None)])
    await chat.write([ChatRow(message("m2", T0), None)])
    later = await chat.write([ChatRow(deletion("m2", T0), None)])
    assert (result.deleted, later.deleted) == (1, 1)
    found = await rows(db_url, "SELECT msg_id, deleted, message FROM chat_messages ORDER BY msg_id")
    assert found == [("clearmsg:m1", False, "x"), ("clearmsg:m2", False, "x"),
                     ("m1", True, "hi"), ("m2", True, "hi")]  # fmt: skip


async def test_placeholder_is_reconciled_with_shifted_offsets_once(
    pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str
) -> None:
    """Offsets count from the stream's start, then from the VOD's; a second run changes nothing."""
    chat = ChatStore(pool)
    await chat.stream_open("s1", "alice", T0)
    await chat.write([ChatRow(message("m1", T0 + timedelta(seconds=10)), "s1")])
    assert await rows(db_url, "SELECT vod_id, offset_ms FROM chat_messages") == [(None, 10_000)]
    vod_row = await add_vod(db_url, "v1", "s1", T0 - timedelta(seconds=3))
    (candidate,) = await chat.reconcile_candidates(window_s=900)
    assert (candidate.stream_id, candidate.vod_row_id) == ("s1", vod_row)
    assert await chat.reconcile("s1", vod_row, 3_000) == 1
    assert await chat.reconcile("s1", vod_row, 3_000) is None
    assert await chat.reconcile_candidates(window_s=900) == []
    # A message after reconciliation goes straight to the VOD, shifted.
    await chat.write([ChatRow(message("m2", T0 + timedelta(seconds=20)), "s1")])
    found = await rows(
        db_url, "SELECT msg_id, vod_id, offset_ms FROM chat_messages ORDER BY msg_id"
    )
    assert found == [("m1", vod_row, 13_000), ("m2", vod_row, 23_000)]
    page = await chat.page("v1", from_ms=0, to_ms=10**9, after=None, limit=1)
    assert [r["msg_id"] for r in page] == ["m1"]
    rest = await chat.page("v1", from_ms=0, to_ms=10**9, after=(13_000, "m1"), limit=10)
    assert [r["msg_id"] for r in rest] == ["m2"]


async def test_a_placeholder_never_enters_the_download_queue(
    pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str
) -> None:
    """With only placeholders (and a VOD in state placeholder), the download claim finds nothing."""
    chat = ChatStore(pool)
    await chat.stream_open("s1", "alice", T0)
    await chat.write([ChatRow(message("m1", T0), "s1")])
    await add_vod(db_url, "legacy", None, T0, state="placeholder")
    assert await Store(pool).download_claim(owner="test", lease_s=60) is None
    (placeholder,) = await chat.placeholders(window_s=900)
    assert (placeholder["stream_id"], placeholder["messages"], placeholder["overdue"]) == (
        "s1",
        1,
        False,
    )
    await chat.stream_close("s1", T0 - timedelta(hours=1))
    (placeholder,) = await chat.placeholders(window_s=900)
    assert placeholder["overdue"] is True


async def test_orphans_attach_by_time_and_vods_without_stream_id_match_by_start(
    pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str
) -> None:
    """Messages with no stream go to the VOD running when sent; a VOD lacking stream_id matches within the window."""
    chat = ChatStore(pool)
    await chat.write([ChatRow(message("o1", T0 + timedelta(minutes=5)), None),
                      ChatRow(message("o2", T0 + timedelta(hours=5)), None)])  # fmt: skip
    vod_row = await add_vod(db_url, "v9", None, T0)
    assert await chat.attach_orphans() == 1
    found = await rows(
        db_url, "SELECT msg_id, vod_id, offset_ms FROM chat_messages ORDER BY msg_id"
    )
    assert found == [("o1", vod_row, 300_000), ("o2", None, None)]
    await chat.stream_open("s2", "alice", T0 + timedelta(seconds=30))
    (candidate,) = await chat.reconcile_candidates(window_s=60)
    assert candidate.vod_row_id == vod_row
    assert await chat.reconcile_candidates(window_s=10) == []


async def test_direct_and_staged_writes_store_the_same_rows(
    pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str
) -> None:
    """A batch of new ids (COPYed straight in) and one replaying an id (staged) store alike."""
    chat = ChatStore(pool)
    await chat.stream_open("s1", "alice", T0)
    await chat.write([ChatRow(message("m0", T0), "s1")])
    vod_row = await add_vod(db_url, "v1", "s1", T0 - timedelta(seconds=3))
    assert await chat.reconcile("s1", vod_row, 3_000) == 1
    sent = T0 + timedelta(seconds=10, milliseconds=675)
    tagged = ChatEvent("d1", "PRIVMSG", "alice", ms(sent), "1", "bob", "Bob", "hi", True, 100,
                       "#FF0000", "p1", None, r"id=d1;system-msg=a\sb")  # fmt: skip
    direct = await chat.write([ChatRow(tagged, "s1"), ChatRow(message("d2", sent), "nostream")])
    staged_event = ChatEvent("s1m", *[getattr(tagged, f) for f in (
        "kind", "channel", "sent_at_ms", "user_id", "login", "display_name", "text", "action",
        "bits", "color", "reply_parent_id", "target_msg_id", "raw_tags")])  # fmt: skip
    staged = await chat.write([ChatRow(message("d1", sent), "s1"), ChatRow(staged_event, "s1"),
                               ChatRow(message("s2m", sent), "nostream")])  # fmt: skip
    assert (direct.inserted, staged.inserted) == ({"alice": 2}, {"alice": 2})
    found = await rows(db_url, "SELECT msg_id, vod_id, offset_ms, sent_at, raw_tags, is_action, "
                       "bits, color, reply_parent_msg_id, stream_id FROM chat_messages "
                       "WHERE msg_id IN ('d1', 's1m', 'd2', 's2m') ORDER BY msg_id")  # fmt: skip
    by_id = {r[0]: r[1:] for r in found}
    assert by_id["d1"] == by_id["s1m"] == (vod_row, 13_675, sent, r"id=d1;system-msg=a\sb", True,
                                           100, "#FF0000", "p1", "s1")  # fmt: skip
    assert by_id["d2"][:2] == by_id["s2m"][:2] == (None, None)
    assert by_id["d2"][2] == by_id["s2m"][2] == sent


async def test_an_event_dropped_by_a_full_buffer_is_taken_when_it_comes_back(
    db_url: str, pool: psycopg_pool.AsyncConnectionPool[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full buffer drops an event without remembering it: its replay is stored, once."""
    monkeypatch.setattr(chat_writer, "MAX_BUFFERED", 1)
    writer = ChatWriter(ChatStore(pool), Metrics("test"), flush_interval_s=0.1)
    writer.add(message("m1", T0), None)
    writer.add(message("m2", T0), None)  # the buffer is full: dropped
    await writer.flush()
    writer.add(message("m2", T0), None)  # the replay after a reconnect
    writer.add(message("m1", T0), None)  # already stored: ignored
    await writer.flush()
    stored = await rows(db_url, "SELECT msg_id FROM chat_messages ORDER BY msg_id")
    assert stored == [("m1",), ("m2",)]
