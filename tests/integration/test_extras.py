"""Thumbnails and chat captions of published parts, against the fake YouTube, within quota."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from tests.fakes.server import LocalServer
from tests.integration import test_upload_stage
from tests.integration.test_upload_stage import NEXT_PACIFIC_MIDNIGHT, Rig, rebuild
from tests.media import make_long_mp4
from vodarchiver.archive_metrics import ArchiveMetrics
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.extras_store import ExtrasStore
from vodarchiver.pipeline.extras import ExtrasPolicy, ExtrasStage
from vodarchiver.pipeline.quota import QuotaPlan, parse_budgets, parse_costs
from vodarchiver.twitch.thumbnail import ThumbnailFetcher
from vodarchiver.youtube.extras_client import THUMBNAIL_MAX_BYTES, ExtrasClient

rig = test_upload_stage.rig  # the upload stage's fixture: fake Google, store, stage
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(2000) + b"\xff\xd9"
H = 3600


class FakeCdn:
    """Twitch's thumbnail CDN: any `/thumb-1280x720.jpg` path answers a JPEG; records paths."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        ok = scope["path"].endswith("1280x720.jpg")
        body = JPEG if ok else b"not found"
        await send({"type": "http.response.start", "status": 200 if ok else 404,
                    "headers": [(b"content-type", b"image/jpeg"),
                                (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def cdn() -> AsyncIterator[tuple[FakeCdn, str]]:
    """A fake thumbnail CDN on 127.0.0.1."""
    fake = FakeCdn()
    async with LocalServer(fake) as server:
        yield fake, server.url


def extras(
    rig: Rig, *, budgets: str = "default=10000", costs: str = "", owner: str = "t:1"
) -> ExtrasStage:
    """An extras stage over the rig's database, fake Google and clock."""
    pool = rig.store.pool
    quota = QuotaPlan(parse_budgets(budgets), parse_costs(costs))
    return ExtrasStage(
        ExtrasClient(rig.http, rig.auth, api_url=rig.base), ExtrasStore(pool), rig.store, quota,
        ArchiveMetrics(CollectorRegistry()), chat=ChatStore(pool), thumbnails=ThumbnailFetcher(rig.http, limit=THUMBNAIL_MAX_BYTES), owner=owner,
        owner_prefix="t:", policy=ExtrasPolicy(captions=True), clock=rig.clock,
    )  # fmt: skip


async def sql(rig: Rig, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run a statement on the test's database."""
    async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as conn:
        cur = await conn.execute(statement, list(params))
        return await cur.fetchall() if cur.description else []


async def drain(stage: ExtrasStage) -> int:
    """Run the stage until nothing is due; how many extras it handled."""
    n = 0
    while await stage.run_once():
        n += 1
    return n


async def add_published_vod(rig: Rig, vod_id: str, cdn_url: str, *, long: bool = False) -> None:
    """A VOD with chat and a Twitch thumbnail, uploaded by the real upload stage."""
    source = make_long_mp4(13 * H) if long else b"v" * 1000
    await rig.add_vod(vod_id, source, duration_s=13 * H if long else 600)
    await sql(rig, "UPDATE vods SET thumbnail_url = %s WHERE twitch_vod_id = %s",
              f"{cdn_url}/cf_vods/{vod_id}/thumb0-%{{width}}x%{{height}}.jpg", vod_id)  # fmt: skip
    await sql(rig, "INSERT INTO chat_messages (msg_id, vod_id, channel, message, sent_at, "
                   "offset_ms, username) SELECT %s || '-' || s, id, 'alice', 'hello ' || s, now(), "
                   "s * %s, 'bob' FROM vods, generate_series(0, 9) s WHERE twitch_vod_id = %s",
              vod_id, (13 * H if long else 600) * 100, vod_id)  # fmt: skip


async def test_each_part_gets_its_thumbnail_and_captions_exactly_once(
    rig: Rig, cdn: tuple[FakeCdn, str]
) -> None:
    """Two parts: thumbnails.set and captions.insert once per part, also after a restart and a lost record."""
    fake_cdn, cdn_url = cdn
    await add_published_vod(rig, "5001", cdn_url, long=True)
    await rig.drain()
    videos = rig.fake.uploaded()
    assert len(videos) == 2
    first = extras(rig)
    assert await first.run_once()  # one extra done, then the "daemon" stops
    assert await drain(extras(rig, owner="t:2")) == 3  # a later run does the rest, nothing twice
    assert {v.id: len(rig.fake.thumbnails.get(v.id, [])) for v in videos} == {
        v.id: 1 for v in videos
    }
    assert {v.id: len(rig.fake.captions.get(v.id, [])) for v in videos} == {v.id: 1 for v in videos}
    assert fake_cdn.paths == ["/cf_vods/5001/thumb0-1280x720.jpg"] * 2
    second_track = rig.fake.captions[videos[1].id][0]["body"].decode()
    assert second_track.startswith("1\n00:00:")  # rebased: part 2's chat starts near 0
    assert "bob: hello" in second_track
    # A kill after YouTube stored the track but before our record: listed, found, not re-sent.
    await sql(rig, "UPDATE youtube_extras SET state = 'pending', next_attempt_at = now() "
                   "WHERE kind = 'captions'")  # fmt: skip
    assert await drain(extras(rig, owner="t:3")) == 2
    assert sum(len(c) for c in rig.fake.captions.values()) == 2
    assert rig.fake.count("captions.insert") == 2
    states = await sql(rig, "SELECT DISTINCT state FROM youtube_extras")
    assert states == [("done",)]


async def test_a_forbidden_thumbnail_is_recorded_once_and_not_asked_again(
    rig: Rig, cdn: tuple[FakeCdn, str]
) -> None:
    """403 forbidden: the thumbnail is refused for the channel; the next VOD's is not asked."""
    _, cdn_url = cdn
    for vod_id in ("5101", "5102"):
        await add_published_vod(rig, vod_id, cdn_url)
    await rig.drain()
    rig.fake.answer_next("thumbnails.set", "forbidden")
    await drain(extras(rig))
    assert rig.fake.count("thumbnails.set") == 1
    rows = await sql(rig, "SELECT state, count(*) FROM youtube_extras WHERE kind = 'thumbnail' "
                          "GROUP BY 1")  # fmt: skip
    assert rows == [("refused", 2)]


async def test_with_the_quota_nearly_spent_the_next_upload_goes_first(
    rig: Rig, cdn: tuple[FakeCdn, str]
) -> None:
    """Extras never take the units of the next video insert; they follow after the reset."""
    _, cdn_url = cdn
    costs = ("videos.insert=default:1600,videos.list=default:0,channels.list=default:0,"
             "playlistItems.list=default:0")  # fmt: skip
    shared = rebuild(rig, budgets="default=3249", costs=costs)
    await add_published_vod(shared, "5201", cdn_url)
    await shared.drain()  # 1,600 of 3,249 spent: one more insert fits, an extra plus one does not
    stage = extras(shared, budgets="default=3249", costs=costs)
    await drain(stage)
    assert rig.fake.count("thumbnails.set") == 0
    assert rig.fake.count("captions.list") == 0
    await add_published_vod(shared, "5202", cdn_url)
    await shared.drain()
    assert len(rig.fake.uploaded()) == 2  # the second video's insert went first
    await sql(rig, "UPDATE youtube_extras SET next_attempt_at = now()")
    await drain(stage)
    assert rig.fake.count("thumbnails.set") == 0  # still the same Pacific day: nothing spent
    shown = await sql(rig, "SELECT count(*) FROM youtube_extras WHERE state = 'pending'")
    assert shown == [(4,)]
    rig.clock.now = NEXT_PACIFIC_MIDNIGHT
    await sql(rig, "UPDATE youtube_extras SET next_attempt_at = now()")
    assert await drain(stage) == 4
    assert rig.fake.count("thumbnails.set") == 2
    assert rig.fake.count("captions.insert") == 2
    names = [r.endpoint for r in rig.fake.requests if r.endpoint in ("insert", "thumbnails.set")]
    assert names == ["insert", "insert", "thumbnails.set", "thumbnails.set"]


async def test_a_token_without_the_captions_scope_is_reported_not_retried(
    rig: Rig, cdn: tuple[FakeCdn, str]
) -> None:
    """403 insufficientPermissions: every part's captions refused once, thumbnails still set."""
    _, cdn_url = cdn
    for vod_id in ("5301", "5302"):
        await add_published_vod(rig, vod_id, cdn_url)
    await rig.drain()
    rig.fake.force_ssl_scope = False
    await drain(extras(rig))
    assert rig.fake.count("captions.list") == 1  # asked once, then never again
    rows = await sql(
        rig, "SELECT kind, state, count(*) FROM youtube_extras GROUP BY 1, 2 ORDER BY 1"
    )
    assert rows == [("captions", "refused", 2), ("thumbnail", "done", 2)]
    (detail,) = (
        await sql(rig, "SELECT DISTINCT detail FROM youtube_extras WHERE kind = 'captions'")
    )[0]
    assert "insufficientPermissions" in detail
    await sql(rig, "UPDATE youtube_extras SET next_attempt_at = now()")
    assert await drain(extras(rig)) == 0
