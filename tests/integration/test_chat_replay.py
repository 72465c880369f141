"""Chat replay against the fake GQL over real HTTP and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import psycopg_pool
import pytest
from prometheus_client import CollectorRegistry

from tests.fakes.gql import Chapter, FakeGql
from tests.fakes.server import LocalServer
from vodarchiver.archive_app import Archive
from vodarchiver.archive_metrics import ArchiveMetrics
from vodarchiver.db.extras_store import ExtrasStore
from vodarchiver.db.replay_store import ReplayStore
from vodarchiver.pipeline.chat_replay import ChatReplay
from vodarchiver.twitch.gql import GqlClient

CLIENT_ID = "kd1unb4b3q4t58fwlpcbzcbnm76a8fp"


@dataclass
class Rig:
    """The fake GQL, a replay stage pointed at it, and the test's database."""

    fake: FakeGql
    server: LocalServer
    http: httpx.AsyncClient
    store: ReplayStore
    db_url: str
    sleeps: list[float] = field(default_factory=list)

    def stage(self, owner: str = "test:1", **kwargs: Any) -> ChatReplay:
        """A replay stage of its own (as a replica would have) that records its waits."""
        gql = GqlClient(self.http, url=self.server.url, client_id=CLIENT_ID, timeout_s=5)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        metrics = ArchiveMetrics(CollectorRegistry())
        return ChatReplay(gql, self.store, metrics, owner=owner, interval_s=0, retry_s=3600,
                          sleep=sleep, **kwargs)  # fmt: skip

    async def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of a query on this test's database."""
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(sql, list(params))
            return await cur.fetchall() if cur.description else []

    async def add_vod(self, vod_id: str, *, state: str = "queued", length_s: int = 3600) -> int:
        """A VOD row as discovery stores it, and the same VOD on the fake."""
        self.fake.add_video(vod_id, length_s=length_s)
        (row,) = await self.rows(
            "INSERT INTO vods (twitch_vod_id, channel, date, duration_s, state) "
            "VALUES (%s, 'alice', %s, %s, %s) RETURNING id",
            vod_id, datetime(2026, 12, 1, 20, 0, tzinfo=UTC), length_s, state,
        )  # fmt: skip
        return int(row[0])

    async def job(self, vod_id: str) -> dict[str, Any]:
        """The VOD's replay job row."""
        rows = await self.rows(
            "SELECT r.state, r.reason, r.next_offset_s, r.pages, r.messages, r.merged, "
            "r.next_attempt_at > now() + interval '1 minute', r.chapters_at IS NOT NULL "
            "FROM chat_replays r JOIN vods v ON v.id = r.vod_id WHERE v.twitch_vod_id = %s",
            vod_id,
        )
        keys = ("state", "reason", "offset", "pages", "messages", "merged", "later", "chapters")
        return dict(zip(keys, rows[0], strict=True))


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    """A fake GQL on 127.0.0.1 and a replay store on a fresh database."""
    fake = FakeGql()
    async with (
        LocalServer(fake) as server,
        httpx.AsyncClient(timeout=5) as http,
        psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as pool,
    ):
        yield Rig(fake, server, http, ReplayStore(pool), db_url)


async def test_a_vod_discovered_after_its_stream_gets_its_whole_chat(rig: Rig) -> None:
    """No live chat at all: every replayed message is stored once, with its offset and tags."""
    await rig.add_vod("2001")
    made = rig.fake.script_chat("2001", 1234)
    assert await rig.stage().run_once()
    rows = await rig.rows(
        "SELECT count(*), count(DISTINCT msg_id), min(sources), max(sources), max(offset_ms) "
        "FROM chat_messages WHERE vod_id IS NOT NULL"
    )
    assert rows == [(1234, 1234, 2, 2, made[-1].offset_s * 1000)]
    job = await rig.job("2001")
    assert (job["state"], job["messages"], job["merged"]) == ("done", 1234, 0)
    assert job["pages"] == 25  # 1234 / 50 rounded up: no page fetched twice
    (tags,) = await rig.rows("SELECT raw_tags, message, sent_at FROM chat_messages "
                             "WHERE msg_id = %s", made[0].id)  # fmt: skip
    assert "emotes=25:10-14" in tags[0]
    assert tags[1] == "message 0 Kappa"
    assert tags[2] == datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    assert not await rig.stage().run_once()  # done: nothing more to claim


async def test_a_dropped_link_is_filled_and_each_message_stored_once(rig: Rig) -> None:
    """Live chat with a gap: the replay fills it, and messages seen by both are marked 3."""
    vod = await rig.add_vod("2002")
    made = rig.fake.script_chat("2002", 600)
    live = [c for c in made if not 1200 <= c.offset_s < 2400]  # the link dropped for 20 minutes
    async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO chat_messages (msg_id, vod_id, channel, message, sent_at, offset_ms) "
            "SELECT id, %s, 'alice', 'live', now(), o * 1000 "
            "FROM unnest(%s::text[], %s::int[]) AS t(id, o)",
            [vod, [c.id for c in live], [c.offset_s for c in live]],
        )
    assert await rig.stage().run_once()
    rows = await rig.rows("SELECT sources, count(*) FROM chat_messages GROUP BY 1 ORDER BY 1")
    assert rows == [(2, 600 - len(live)), (3, len(live))]
    job = await rig.job("2002")
    assert (job["messages"], job["merged"]) == (600, len(live))


async def test_integrity_failure_on_cursors_continues_by_offset(rig: Rig) -> None:
    """Twitch refuses every cursor request: the replay goes on by offset and misses nothing."""
    await rig.add_vod("2003")
    rig.fake.script_chat("2003", 500)
    rig.fake.integrity_on_cursor = True
    assert await rig.stage().run_once()
    assert (await rig.rows("SELECT count(*) FROM chat_messages"))[0][0] == 500
    assert (await rig.job("2003"))["state"] == "done"
    comment_requests = [r for r in rig.fake.received if r.operation.startswith("VideoComments")]
    assert [r.outcome for r in comment_requests].count("integrity") == 1  # asked once, then offsets
    assert all("cursor" not in r.variables for r in comment_requests[2:])


@pytest.mark.parametrize(("knob", "reason"), [
    ("comments_null_next", "comments_null"), ("integrity_next", "integrity"),
    ("delete_video", "video_null"),
])  # fmt: skip
async def test_refusals_are_recorded_as_unavailable_and_retried_later(
    rig: Rig, knob: str, reason: str
) -> None:
    """A refusal by offset is not a failure of the VOD: unavailable with the reason, asked later."""
    await rig.add_vod("2004")
    rig.fake.script_chat("2004", 80)
    getattr(rig.fake, knob)(*(["2004"] if knob == "delete_video" else []))
    assert await rig.stage().run_once()
    job = await rig.job("2004")
    assert (job["state"], job["reason"], job["later"]) == ("unavailable", reason, True)
    assert (await rig.rows("SELECT state FROM vods"))[0][0] == "queued"  # the VOD is untouched
    assert not await rig.stage().run_once()  # not due yet
    rig.fake.videos["2004"].deleted = False
    await rig.rows("UPDATE chat_replays SET next_attempt_at = now()")
    assert await rig.stage().run_once()
    assert (
        (await rig.job("2004"))["state"],
        (await rig.rows("SELECT count(*) FROM chat_messages"))[0][0],
    ) == ("done", 80)


async def test_429_and_5xx_back_off_then_finish(rig: Rig) -> None:
    """Two 503s and a 429 are waited out with growing waits; the chat still arrives whole."""
    await rig.add_vod("2005")
    rig.fake.script_chat("2005", 120)
    rig.fake.pass_next(1)  # the chapters
    rig.fake.fail_next(2)
    rig.fake.rate_limit_next(1)
    assert await rig.stage().run_once()
    assert (await rig.job("2005"))["state"] == "done"
    assert (await rig.rows("SELECT count(*) FROM chat_messages"))[0][0] == 120
    assert len(rig.sleeps) == 3
    assert all(s >= 0.5 for s in rig.sleeps)


async def test_endless_5xx_puts_the_vod_back_for_later(rig: Rig) -> None:
    """Five failures in a row end the run: the job stays pending, due later, with the reason."""
    await rig.add_vod("2006")
    rig.fake.script_chat("2006", 60)
    rig.fake.pass_next(1)  # the chapters
    rig.fake.fail_next(20)
    assert await rig.stage().run_once()
    job = await rig.job("2006")
    assert (job["state"], job["later"]) == ("pending", True)
    assert "503" in job["reason"]


async def test_a_restart_resumes_from_the_stored_point(rig: Rig) -> None:
    """A run that gave up after three pages continues from the stored cursor, not from 0."""
    await rig.add_vod("2007")
    rig.fake.script_chat("2007", 400)
    rig.fake.pass_next(4)  # the chapters and three pages, then GQL fails until the run gives up
    rig.fake.fail_next(5)
    assert await rig.stage().run_once()
    job = await rig.job("2007")
    assert (job["state"], job["pages"], job["messages"]) == ("pending", 3, 150)
    (stored_cursor,) = (await rig.rows("SELECT cursor FROM chat_replays"))[0]
    rig.fake.reset()
    await rig.rows("UPDATE chat_replays SET next_attempt_at = now()")
    assert await rig.stage().run_once()
    requests = [r for r in rig.fake.received if r.operation.startswith("VideoComments")]
    assert requests[0].variables == {"videoID": "2007", "cursor": stored_cursor}
    assert len(requests) == 5  # the remaining 250 messages, nothing fetched twice
    assert await rig.rows("SELECT count(*), count(DISTINCT msg_id) FROM chat_messages") == [
        (400, 400)
    ]
    assert (await rig.job("2007"))["state"] == "done"


async def test_chapters_are_fetched_once_and_stored(rig: Rig) -> None:
    """The chapter list is stored in order with the first run and not asked again."""
    await rig.add_vod("2008")
    rig.fake.set_chapters("2008", [Chapter(0, 573_000, "Just Chatting"),
                                   Chapter(573_000, 3_027_000, "Art", "509660")])  # fmt: skip
    assert await rig.stage().run_once()
    assert await rig.rows("SELECT position, start_ms, title, game_id FROM vod_chapters "
                          "ORDER BY 1") == [(0, 0, "Just Chatting", "509658"),
                                            (1, 573_000, "Art", "509660")]  # fmt: skip
    assert (await rig.job("2008"))["chapters"] is True
    assert rig.fake.count("VideoPlayer_ChapterSelectButtonVideo") == 1


async def test_replicas_split_the_vods(rig: Rig) -> None:
    """Two owners claiming at once never get the same VOD; a live VOD is not claimed."""
    for vod_id in ("2010", "2011"):
        await rig.add_vod(vod_id)
    await rig.add_vod("2012", state="live")
    await rig.store.enqueue()
    a = await rig.store.claim("host:a:1", 60, prefix="host:a:")
    b = await rig.store.claim("host:b:1", 60, prefix="host:b:")
    c = await rig.store.claim("host:c:1", 60, prefix="host:c:")
    assert a is not None
    assert b is not None
    assert c is None
    assert {a.vod_id, b.vod_id} == {"2010", "2011"}
    # A later run of host a takes a's job over at once; host c must wait for the lease.
    again = await rig.store.claim("host:a:2", 60, prefix="host:a:")
    assert again is not None
    assert again.vod_id == a.vod_id


async def test_coverage_of_a_scripted_gap(rig: Rig) -> None:
    """Live chat with a 20-minute hole and a refused replay: 2/3 covered, the hole is the gap."""
    vod = await rig.add_vod("2020")
    await rig.rows(
        "INSERT INTO chat_messages (msg_id, vod_id, channel, message, sent_at, offset_ms) "
        "SELECT 'm' || s, %s, 'alice', 'hi', now(), s * 30000 FROM generate_series(0, 119) s "
        "WHERE s * 30 < 1200 OR s * 30 >= 2400",
        vod,
    )
    rig.fake.comments_null_next()
    assert await rig.stage().run_once()
    archive = Archive(ArchiveMetrics(CollectorRegistry()), rig.store, None,
                      ExtrasStore(rig.store._pool))  # fmt: skip
    shown = (await archive.vod_fields("2020"))["chat_coverage"]
    assert (shown["minutes"], shown["covered_minutes"], shown["only_live_minutes"]) == (60, 40, 40)
    assert shown["gaps"] == [{"from_s": 1200, "to_s": 2400, "from": "0:20:00", "to": "0:40:00"}]
    assert (shown["replay"]["state"], shown["replay"]["reason"]) == ("unavailable", "comments_null")
    # Twitch answers later: the replay fills the hole and every minute is seen by both or replay.
    rig.fake.script_chat("2020", 120, ids=[f"m{s}" for s in range(120)])
    await rig.rows("UPDATE chat_replays SET next_attempt_at = now()")
    assert await rig.stage().run_once()
    shown = (await archive.vod_fields("2020"))["chat_coverage"]
    assert (shown["coverage"], shown["gaps"], shown["only_replay_minutes"]) == (1.0, [], 20)


async def test_a_vod_canceled_after_it_was_queued_is_not_replayed_until_restored(rig: Rig) -> None:
    """A canceled VOD's queued replay job is left alone; once restored to queued it is replayed."""
    await rig.add_vod("2009")
    rig.fake.script_chat("2009", 60)
    await rig.store.enqueue()
    await rig.rows("UPDATE vods SET state = 'canceled' WHERE twitch_vod_id = '2009'")
    assert not await rig.stage().run_once()
    assert (await rig.job("2009"))["pages"] == 0
    await rig.rows("UPDATE vods SET state = 'queued' WHERE twitch_vod_id = '2009'")
    assert await rig.stage().run_once()
    assert (await rig.job("2009"))["state"] == "done"
