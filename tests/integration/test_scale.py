"""Issue 15 against a real PostgreSQL: counts by state kept exact by every write path, `GET /vods`
keyset-paged on an index per filter combination, and a slow database told apart from a down one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import psycopg_pool
import pytest

from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.queries import q
from vodarchiver.db.uploads import UploadStore
from vodarchiver.health import DatabaseCheck
from vodarchiver.metrics import Metrics
from vodarchiver.models import DownloadResult, DownloadState, VodState, VodUpsert
from vodarchiver.pipeline.operator import Operator
from vodarchiver.web import MAX_OFFSET, Api, build_app

NOW = datetime.now(UTC)


@dataclass
class Rig:
    """The real app over a real pool, and the test database."""

    client: httpx.AsyncClient
    store: UploadStore
    api: Api
    db_url: str

    async def sql(self, query: Any, *params: object) -> list[tuple[Any, ...]]:
        """One statement on the test database, autocommitted."""
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(query, list(params))
            return await cur.fetchall() if cur.description else []

    async def counts_agree(self) -> None:
        """The counts the triggers keep are exactly those of the rows, zeros aside."""
        kept = {s: int(n) for s, n in await self.sql("SELECT * FROM vod_state_counts()") if n}
        real = {s: int(n) for s, n in await self.sql(
            "SELECT state, count(*) FROM vods GROUP BY state")}  # fmt: skip
        assert kept == real


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    """The app with its operator, no stages running."""
    metrics = Metrics("9.9.9")
    probe = DatabaseProbe(db_url)
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as pool:
        store = UploadStore(pool)
        api = Api(store=store, probe=probe, metrics=metrics, checks=[DatabaseCheck(probe)],
                  version="9.9.9", started_at=NOW, operator=Operator(store),
                  scrape_timeout_s=0.5)  # fmt: skip
        transport = httpx.ASGITransport(app=build_app(api, metrics), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield Rig(client, store, api, db_url)
    await probe.aclose()


def upsert(vod_id: str, *, live: bool | None, channel: str = "alice") -> VodUpsert:
    """A VOD as discovery writes it."""
    return VodUpsert(id=vod_id, channel=channel, stream_id=None, title=f"VOD {vod_id}",
                     description="", created_at=NOW, published_at=NOW, duration_s=60,
                     url=f"https://www.twitch.tv/videos/{vod_id}", thumbnail_url="",
                     viewable="public", muted_segments=[], retention_days=14,
                     expires_at=NOW + timedelta(days=14), live=live)  # fmt: skip


async def test_counts_stay_exact_through_every_write_path(rig: Rig) -> None:
    """Discovery's upserts, a download claim and its end, gone, operator actions over HTTP, the
    runbook's force-reprocess UPDATE and a DELETE by hand all keep the counts equal to the rows."""
    await rig.counts_agree()
    await rig.store.vods_upsert([upsert(str(i), live=i < 3) for i in range(1, 9)])
    await rig.counts_agree()
    await rig.store.vods_upsert([upsert(str(i), live=False) for i in range(1, 4)])  # live->queued
    await rig.counts_agree()
    claim = await rig.store.download_claim(owner="me", lease_s=60)
    assert claim is not None
    await rig.counts_agree()
    done = DownloadResult(VodState.DOWNLOADED, DownloadState.DOWNLOADED, 0)
    assert await rig.store.download_finish(claim.row_id, owner="me", result=done)
    await rig.counts_agree()
    await rig.store.vods_auth(waiting=True)  # downloaded -> waiting_for_auth
    await rig.counts_agree()
    await rig.store.vods_mark_missing(["7"], NOW - timedelta(days=30))
    await rig.store.vods_mark_missing(["7"], NOW)  # still missing: gone
    await rig.counts_agree()
    for vod, action in (("4", "cancel"), ("5", "skip"), ("4", "restore"), ("6", "priority")):
        body = {"priority": 3} if action == "priority" else None
        answer = await rig.client.post(f"/admin/vods/{vod}/{action}", json=body)
        assert answer.status_code == 200, answer.text
        await rig.counts_agree()
    await rig.sql("INSERT INTO vods (twitch_vod_id, channel, state, processed, youtube_url) "
                  "VALUES ('9', 'alice', 'uploaded', 1, 'https://youtu.be/x')")  # fmt: skip
    await rig.counts_agree()
    await rig.sql(
        "UPDATE vods SET processed=0, processing_error=NULL, youtube_url=NULL "
        "WHERE twitch_vod_id='9'"
    )  # the runbook's recipe: a trigger makes it queued
    assert (await rig.sql("SELECT state FROM vods WHERE twitch_vod_id = '9'")) == [("queued",)]
    await rig.counts_agree()
    await rig.sql("DELETE FROM vods WHERE twitch_vod_id IN ('2', '3')")
    await rig.counts_agree()
    status = (await rig.client.get("/status")).json()
    real = dict(await rig.sql("SELECT state, count(*) FROM vods GROUP BY state"))
    assert {k: v for k, v in status["by_state"].items() if v} == real


async def test_writers_never_wait_on_each_other_for_the_counts(rig: Rig) -> None:
    """With one transaction holding a state change open, another moving VODs the opposite way
    commits at once (a shared counter row would make it wait, or deadlock)."""
    await rig.sql("INSERT INTO vods (twitch_vod_id, channel, state) VALUES "
                  "('1', 'alice', 'queued'), ('2', 'alice', 'downloading')")  # fmt: skip
    async with await psycopg.AsyncConnection.connect(rig.db_url) as held:
        await held.execute("UPDATE vods SET state = 'downloading' WHERE twitch_vod_id = '1'")
        async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as other:
            await other.execute("SET lock_timeout = '2s'")
            await other.execute("UPDATE vods SET state = 'queued' WHERE twitch_vod_id = '2'")
            await other.execute("SELECT * FROM vod_state_counts()")  # a reader folds meanwhile
        await held.commit()
    # The reader folded what was committed; the held transaction's change waits as two deltas.
    assert (await rig.sql("SELECT count(*) FROM vod_state_deltas")) == [(2,)]
    await rig.counts_agree()


async def seed(rig: Rig, n: int) -> None:
    """`n` VODs over two channels and three states, with priorities and some without expiry."""
    await rig.sql(
        "INSERT INTO vods (twitch_vod_id, channel, state, priority, expires_at) "
        "SELECT g::text, (ARRAY['alice', 'bob'])[1 + g %% 2], "
        "(ARRAY['queued', 'uploaded', 'gone'])[1 + g %% 3], "
        "CASE WHEN g %% 17 = 0 THEN 2 WHEN g %% 23 = 0 THEN -1 ELSE 0 END, "
        "CASE WHEN g %% 11 = 0 THEN NULL ELSE now() + (g %% 50) * interval '1 hour' END "
        "FROM generate_series(1, %s) g",
        n,
    )


@pytest.mark.parametrize("query", [{}, {"channel": "alice"}, {"state": "queued"},
                                   {"channel": "BOB", "state": "uploaded"}])  # fmt: skip
async def test_following_next_walks_every_vod_once_in_queue_order(
    rig: Rig, query: dict[str, str]
) -> None:
    """Pages chained by `next` list each matching VOD once, in priority then expiry order
    (VODs without an expiry last), whatever the filters, ending with `next` null."""
    await seed(rig, 300)
    channel, state = query.get("channel", "").lower() or None, query.get("state")
    expected = [r[0] for r in await rig.sql(
        "SELECT twitch_vod_id FROM vods WHERE (%s::text IS NULL OR channel = %s) "
        "AND (%s::text IS NULL OR state = %s) ORDER BY priority DESC, expires_at ASC NULLS LAST, id",
        channel, channel, state, state)]  # fmt: skip
    assert len(expected) > 40
    seen: list[str] = []
    params: dict[str, str] = {**query, "limit": "7"}
    while True:
        page = (await rig.client.get("/vods", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        assert "row_id" not in (page["items"] or [{}])[0]
        if page["next"] is None:
            break
        params["after"] = page["next"]
    assert seen == expected
    first = (await rig.client.get("/vods", params={**query, "limit": "7", "offset": "7"})).json()
    assert [item["id"] for item in first["items"]] == expected[7:14]


async def test_offset_is_capped_and_next_offset_stops_at_the_cap(rig: Rig) -> None:
    """An offset past the cap is a 400 naming `offset`; the last page within it has no next_offset
    but still a `next` cursor."""
    await seed(rig, 30)
    answer = await rig.client.get("/vods", params={"offset": str(MAX_OFFSET + 1)})
    assert (answer.status_code, answer.json()["parameter"]) == (400, "offset")
    page = (await rig.client.get("/vods", params={"offset": "5", "limit": "10"})).json()
    assert (page["next_offset"], page["next"] is not None) == (15, True)
    last = (await rig.client.get("/vods", params={"offset": "25", "limit": "10"})).json()
    assert (len(last["items"]), last["next_offset"], last["next"]) == (5, None, None)
    edge = (await rig.client.get("/vods", params={"offset": str(MAX_OFFSET), "limit": "1"})).json()
    assert edge == {"items": [], "limit": 1, "offset": MAX_OFFSET, "next_offset": None,
                    "next": None}  # fmt: skip


async def test_each_filter_combination_reads_its_own_index_in_order(rig: Rig) -> None:
    """EXPLAIN of the listing, first page and after a cursor, with every filter combination: an
    index scan of the index made for it, and no sort (the index gives the order)."""
    await seed(rig, 2000)
    await rig.sql("ANALYZE vods")
    indexes = {(False, False): "vods_list_idx", (True, False): "vods_list_channel_idx",
               (False, True): "vods_list_state_idx", (True, True): "vods_list_channel_state_idx"}  # fmt: skip
    async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as conn:
        # A table this small would be read whole, or through a bitmap and sorted: steer the
        # planner off those, so that it must say which index gives the order (a Sort if none).
        for knob in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            await conn.execute(f"SET {knob} = off")
        for (channel, state), index in indexes.items():
            for after in (None, 40):
                params = {"channel": "alice" if channel else None,
                          "state": "queued" if state else None, "limit": 51, "offset": 0,
                          "after_priority": 0 if after else None,
                          "after_expiry": (NOW + timedelta(hours=9)).isoformat() if after else None,
                          "after_id": after}  # fmt: skip
                cur = await conn.execute(b"EXPLAIN " + q("vods_list").encode(), params,
                                         prepare=False)  # fmt: skip
                plan = "\n".join(r[0] for r in await cur.fetchall())
                assert f"Index Scan using {index} " in plan, plan
                assert "Sort" not in plan, plan


async def test_the_listing_is_never_prepared(rig: Rig) -> None:
    """However often it runs on one connection, the listing is not a prepared statement, so
    PostgreSQL never switches it to a generic plan of its optional filters."""
    async with psycopg_pool.AsyncConnectionPool(rig.db_url, min_size=1, max_size=1) as pool:
        store = UploadStore(pool)
        for i in range(12):
            await store.vods_list(channel="alice" if i % 2 else None, state=None, limit=5, offset=0)
            await store.kv_get_many(["x"])  # an ordinary named query, prepared after a few runs
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT statement LIKE '%%row_id%%' FROM pg_prepared_statements "
                "WHERE statement LIKE '%%FROM vods%%' OR statement LIKE '%%FROM kv%%'"
            )
            assert [r[0] for r in await cur.fetchall()] == [False]


async def test_a_slow_database_is_slow_not_down(rig: Rig) -> None:
    """While the counts are locked, /metrics says the database is up, counts a slow scrape and
    keeps the last figures; once they are free it refreshes them."""
    await seed(rig, 9)
    before = (await rig.client.get("/metrics")).text
    assert "vodarchiver_database_up 1.0" in before
    assert 'vodarchiver_vods{state="queued"} 3.0' in before
    async with await psycopg.AsyncConnection.connect(rig.db_url) as locker:
        await locker.execute("LOCK TABLE vod_state_counts IN ACCESS EXCLUSIVE MODE")
        await rig.sql(
            "INSERT INTO vods (twitch_vod_id, channel, state) VALUES ('x', 'a', 'queued')"
        )
        scrapes = await asyncio.gather(*(rig.client.get("/metrics") for _ in range(8)))
        for scrape in scrapes:
            assert "vodarchiver_database_up 1.0" in scrape.text
            assert 'vodarchiver_vods{state="queued"} 3.0' in scrape.text
        assert "vodarchiver_scrape_slow_total 8.0" in scrapes[-1].text
        status = await rig.client.get("/status")
        assert status.status_code == 503
        assert status.json()["error"].startswith("database slow")
        await locker.rollback()
    after = (await rig.client.get("/metrics")).text
    assert 'vodarchiver_vods{state="queued"} 4.0' in after
    assert "vodarchiver_database_up 1.0" in after
