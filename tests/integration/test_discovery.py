"""Discovery against the fake Twitch over real HTTP and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import psycopg_pool
import pytest

from tests.conftest import ManualClock, logged
from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch
from vodarchiver.db.store import Store
from vodarchiver.errors import HelixRequestError, HelixUnavailable
from vodarchiver.metrics import Metrics
from vodarchiver.models import ChannelRecord, PassResult
from vodarchiver.pipeline.discovery import Discovery
from vodarchiver.twitch.auth import AppToken
from vodarchiver.twitch.helix import HelixClient, RetryPolicy
from vodarchiver.values import Secret


@dataclass
class Rig:
    """The fake Twitch, and the daemon's real client, store and metrics pointed at it."""

    fake: FakeTwitch
    server: LocalServer
    http: httpx.AsyncClient
    store: Store
    metrics: Metrics
    db_url: str

    def client(self) -> tuple[HelixClient, AppToken]:
        """A Helix client of its own (as a second replica would have)."""
        token = AppToken(self.http, auth_url=f"{self.server.url}/oauth2", client_id=self.fake.client_id,
                         client_secret=Secret("fake-client-secret"), metrics=self.metrics)  # fmt: skip
        helix = HelixClient(self.http, token, api_url=f"{self.server.url}/helix", client_id=self.fake.client_id,
                            metrics=self.metrics, retry=RetryPolicy(base_s=0.01, cap_s=0.05))  # fmt: skip
        return helix, token

    def discovery(self, channels: list[str], **kwargs: Any) -> Discovery:
        """A Discovery over these channels with its own client."""
        helix, _ = self.client()
        return Discovery(helix, self.store, self.metrics, channels=channels,
                         retention_overrides=kwargs.pop("overrides", {}), interval_s=300, **kwargs)  # fmt: skip

    async def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of a query on this test's database."""
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            return await (await conn.execute(sql, list(params))).fetchall()

    async def state(self, vod_id: str) -> str:
        """The state of one VOD."""
        return str(
            (await self.rows("SELECT state FROM vods WHERE twitch_vod_id = %s", vod_id))[0][0]
        )


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    """A fake Twitch served on 127.0.0.1, and a store on a fresh database."""
    fake = FakeTwitch()
    async with (
        LocalServer(fake) as server,
        httpx.AsyncClient(timeout=5) as http,
        psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as pool,
    ):
        yield Rig(fake, server, http, Store(pool), Metrics("test"), db_url)


async def test_three_channels_of_250_are_read_completely_then_cheaply(rig: Rig) -> None:
    """750 VODs are each stored once with their expiry; the next pass costs one videos request per channel."""
    kinds = {"alice": "partner", "bob": "affiliate", "carol": ""}
    for login, kind in kinds.items():
        rig.fake.add_channel(login, broadcaster_type=kind)
        rig.fake.add_vods(login, 250)
    discovery = rig.discovery(list(kinds))

    first = await discovery.run_pass()
    assert [(o.channel, o.discovered, o.pages, o.complete, o.error) for o in first] == [
        (login, 250, 3, True, None) for login in kinds
    ]
    assert rig.fake.count("videos") == 9  # ceil(250 / 100) pages per channel: the minimum
    rows = await rig.rows(
        "SELECT channel, count(*), count(DISTINCT twitch_vod_id) FROM vods GROUP BY 1 ORDER BY 1"
    )
    assert rows == [(login, 250, 250) for login in sorted(kinds)]
    windows = await rig.rows(
        "SELECT DISTINCT channel, retention_days, expires_at - date FROM vods ORDER BY 1"
    )
    assert windows == [
        ("alice", 60, timedelta(days=60)),
        ("bob", 14, timedelta(days=14)),
        ("carol", 7, timedelta(days=7)),
    ]

    rig.fake.reset()
    second = await discovery.run_pass()
    assert all(o.discovered == 0 and o.pages == 1 and o.error is None for o in second)
    assert rig.fake.count("videos") == 3
    assert rig.fake.count("users") == 0  # login-to-id lookups are cached
    assert rig.fake.count("streams") == 1  # one live check for every channel


async def test_new_vods_and_metadata_changes_are_picked_up(rig: Rig) -> None:
    """A later pass inserts a new VOD and applies a title edit; nothing is duplicated."""
    rig.fake.add_channel("alice")
    old = rig.fake.add_vods("alice", 5)
    discovery = rig.discovery(["alice"])
    await discovery.run_pass()
    new = rig.fake.add_vod("alice", created_at=datetime.now(UTC))
    rig.fake.set_title(old[0]["id"], "Renamed on Twitch")
    (outcome,) = await discovery.run_pass()
    assert outcome.discovered == 1
    assert await rig.rows("SELECT title FROM vods WHERE twitch_vod_id = %s", old[0]["id"]) == [
        ("Renamed on Twitch",)
    ]
    assert await rig.rows("SELECT count(*) FROM vods") == [(6,)]
    assert await rig.state(new["id"]) == "queued"


async def test_a_401_refreshes_the_token_once_and_succeeds(rig: Rig) -> None:
    """After Twitch revokes the app token, one new token is fetched and the call is retried once."""
    rig.fake.add_channel("alice")
    rig.fake.add_vods("alice", 3)
    discovery = rig.discovery(["alice"])
    await discovery.run_pass()
    rig.fake.revoke_tokens()
    rig.fake.reset()
    (outcome,) = await discovery.run_pass()
    assert outcome.error is None
    assert rig.fake.count("token") == 1
    statuses = [r.status for r in rig.fake.received if r.endpoint != "token"]
    assert statuses.count(401) == 1
    assert statuses[-1] == 200


async def test_a_429_waits_for_the_reset_without_a_burst(rig: Rig) -> None:
    """A 429 whose Ratelimit-Reset is 2 s ahead is retried once, after the reset."""
    rig.fake.add_channel("alice")
    rig.fake.add_vods("alice", 3)
    rig.fake.answer_429_next("videos", reset_in_s=2)
    (outcome,) = await rig.discovery(["alice"]).run_pass()
    assert outcome.error is None
    videos = [r for r in rig.fake.received if r.endpoint == "videos"]
    assert [r.status for r in videos] == [429, 200]
    assert videos[1].at - videos[0].at >= 1.5


async def test_an_empty_bucket_on_a_success_delays_the_next_call(rig: Rig) -> None:
    """Ratelimit-Remaining 0 on a 200 makes the next call wait for the reset instead of earning a 429."""
    rig.fake.add_channel("alice")
    rig.fake.add_vods("alice", 150)
    helix, _ = rig.client()
    await helix.users(["alice"])
    rig.fake.reset()
    rig.fake.set_ratelimit(remaining=1, reset_in_s=2)  # the next answer reports 0 left
    first = await helix.videos_page(rig.fake.channel("alice").user_id)
    second = await helix.videos_page(rig.fake.channel("alice").user_id, first.cursor)
    statuses = [r.status for r in rig.fake.received if r.endpoint == "videos"]
    assert statuses == [200, 200]
    gap = rig.fake.received[-1].at - rig.fake.received[-2].at
    assert gap >= 1.0
    assert len(first.videos) + len(second.videos) == 150


async def test_5xx_and_dropped_answers_are_retried(rig: Rig) -> None:
    """Two 503s then success: the pass completes, three videos requests in all."""
    rig.fake.add_channel("alice")
    rig.fake.add_vods("alice", 3)
    rig.fake.fail_next("videos", 503, times=2)
    (outcome,) = await rig.discovery(["alice"]).run_pass()
    assert outcome.error is None
    assert [r.status for r in rig.fake.received if r.endpoint == "videos"] == [503, 503, 200]


async def test_a_live_archive_waits_until_the_stream_ends(rig: Rig) -> None:
    """The archive of a live stream is stored as live, not queued, until the stream ends."""
    rig.fake.add_channel("alice")
    rig.fake.add_vods("alice", 2)
    rig.fake.go_live("alice")
    rig.fake.grow_live_vod("alice", 600)
    live_id = rig.fake.live_vod("alice")["id"]
    discovery = rig.discovery(["alice"])
    await discovery.run_pass()
    assert await rig.state(live_id) == "live"
    rig.fake.grow_live_vod("alice", 600)
    await discovery.run_pass()
    assert await rig.state(live_id) == "live"
    assert await rig.rows("SELECT duration_s FROM vods WHERE twitch_vod_id = %s", live_id) == [
        (1200,)
    ]
    rig.fake.end_stream("alice")
    await discovery.run_pass()
    assert await rig.state(live_id) == "queued"


async def test_unknown_liveness_never_queues_a_new_archive(rig: Rig) -> None:
    """If /streams fails, a new archive is held as live rather than queued half-way."""
    rig.fake.add_channel("alice")
    rig.fake.go_live("alice")
    live_id = rig.fake.live_vod("alice")["id"]
    rig.fake.fail_next("streams", 500, times=10)
    await rig.discovery(["alice"]).run_pass()
    assert await rig.state(live_id) == "live"


async def test_a_vod_deleted_on_twitch_becomes_gone(rig: Rig) -> None:
    """A deleted recent VOD is gone after two confirmed misses 10+ minutes apart; an old one beyond page 1 after the hourly checks."""
    rig.fake.add_channel("alice")
    vods = rig.fake.add_vods("alice", 150)
    clock = ManualClock()
    discovery = rig.discovery(["alice"], clock=clock)
    await discovery.run_pass()
    recent, old = vods[3]["id"], vods[140]["id"]
    rig.fake.delete_vod(recent)
    rig.fake.delete_vod(old)
    (outcome,) = await discovery.run_pass()
    assert outcome.gone == []  # one miss is not enough
    assert await rig.rows("SELECT twitch_vod_id FROM vods WHERE missing_since IS NOT NULL") == [
        (recent,)
    ]
    clock.at(minutes=15)
    (outcome,) = await discovery.run_pass()
    assert outcome.gone == [recent]
    assert await rig.state(recent) == "gone"
    assert await rig.state(old) == "queued"
    clock.at(hours=2)
    await discovery.run_pass()
    clock.at(hours=3, minutes=30)
    (outcome,) = await discovery.run_pass()
    assert outcome.gone == [old]
    gone = await rig.rows(
        "SELECT gone_at IS NOT NULL, download_state FROM vods WHERE state = 'gone'"
    )
    assert gone == [(True, "gone"), (True, "gone")]


async def test_a_proxy_404_or_a_single_miss_never_marks_gone(rig: Rig) -> None:
    """An HTML 404 on the id lookup (not Helix's own), or a VOD missing once and then back, is not gone."""
    rig.fake.add_channel("alice")
    vods = rig.fake.add_vods("alice", 150)
    clock = ManualClock()
    discovery = rig.discovery(["alice"], clock=clock)
    await discovery.run_pass()
    for minutes in (90, 200):  # two hourly checks of the 50 VODs beyond page 1
        clock.at(minutes=minutes)
        rig.fake.fail_next("videos", 404, body=b"<html>Not Found</html>", content_type="text/html")
        await discovery.run_pass()
    assert await rig.rows(
        "SELECT count(*) FROM vods WHERE state = 'gone' OR missing_since IS NOT NULL"
    ) == [(0,)]
    deleted = rig.fake.video(vods[2]["id"])
    rig.fake.delete_vod(deleted["id"])
    clock.at(minutes=210)
    await discovery.run_pass()
    assert await rig.rows(
        "SELECT missing_since IS NOT NULL FROM vods WHERE twitch_vod_id = %s", deleted["id"]
    ) == [(True,)]
    rig.fake.add_vod(
        "alice", video_id=deleted["id"], created_at=datetime.fromisoformat(deleted["created_at"])
    )
    clock.at(minutes=240)
    await discovery.run_pass()
    assert await rig.rows(
        "SELECT state, missing_since FROM vods WHERE twitch_vod_id = %s", deleted["id"]
    ) == [("queued", None)]


async def test_a_gone_vod_that_comes_back_is_revived(rig: Rig) -> None:
    """A VOD marked gone that Twitch lists again is queued again, its download state reset."""
    rig.fake.add_channel("alice")
    vods = rig.fake.add_vods("alice", 3)
    clock = ManualClock()
    discovery = rig.discovery(["alice"], clock=clock)
    await discovery.run_pass()
    victim = rig.fake.video(vods[1]["id"])
    rig.fake.delete_vod(victim["id"])
    await discovery.run_pass()
    clock.at(minutes=15)
    await discovery.run_pass()
    assert await rig.state(victim["id"]) == "gone"
    rig.fake.add_vod(
        "alice", video_id=victim["id"], created_at=datetime.fromisoformat(victim["created_at"])
    )
    clock.at(hours=2)
    await discovery.run_pass()
    assert await rig.rows(
        "SELECT state, download_state, gone_at FROM vods WHERE twitch_vod_id = %s", victim["id"]
    ) == [("queued", "pending", None)]


async def test_a_pass_failing_midway_loses_no_vod(rig: Rig) -> None:
    """150 new VODs span two pages and page 2 fails: later passes read down to the watermark and store all of them."""
    rig.fake.add_channel("alice")
    rig.fake.add_vods(
        "alice", 150, start=datetime.now(UTC) - timedelta(days=3), spacing=timedelta(minutes=20)
    )
    discovery = rig.discovery(["alice"])
    await discovery.run_pass()
    rig.fake.add_vods("alice", 150, start=datetime.now(UTC), spacing=timedelta(minutes=10))
    rig.fake.fail_next("videos", 503, times=5, let_through=1)  # page 1 answers, page 2 never does
    (broken,) = await discovery.run_pass()
    assert broken.error is not None
    assert broken.pages == 1
    (mended,) = await discovery.run_pass()
    assert mended.error is None
    assert mended.reached_watermark
    assert not mended.complete  # it stopped at the watermark (page 2 of 3), not at the end
    assert await rig.rows("SELECT count(*) FROM vods") == [(300,)]
    rig.fake.reset()
    (quiet,) = await discovery.run_pass()
    assert (quiet.pages, rig.fake.count("videos")) == (1, 1)


async def test_the_whole_listing_is_read_again_once_a_day(rig: Rig) -> None:
    """A day after the last full read, a pass reads every page again (and finds what an incremental pass could not)."""
    rig.fake.add_channel("alice")
    rig.fake.add_vods("alice", 250)
    clock = ManualClock()
    discovery = rig.discovery(["alice"], clock=clock)
    await discovery.run_pass()
    hidden = rig.fake.add_vod(
        "alice", created_at=clock.start - timedelta(days=300)
    )  # older than the watermark
    (incremental,) = await discovery.run_pass()
    assert incremental.pages == 1
    clock.at(days=1, minutes=1)
    (full,) = await discovery.run_pass()
    assert full.pages == 3
    assert await rig.state(hidden["id"]) == "queued"


@pytest.mark.parametrize(
    "body",
    [
        "duplicate",  # the same id twice in one page
        "deep",  # JSON nested beyond what a parser recurses through
    ],
)
async def test_hostile_pages_cannot_stop_discovery(rig: Rig, body: str) -> None:
    """A page with a repeated id is stored once; a page too deeply nested is a logged skip; the other channel is fine."""
    for login in ("alice", "bob"):
        rig.fake.add_channel(login)
        rig.fake.add_vods(login, 3)
    alice_user = rig.fake.channel("alice").user_id
    video = dict(rig.fake.add_vod("alice", created_at=datetime.now(UTC)))
    if body == "duplicate":
        payload = json.dumps({"data": [video, video], "pagination": {}})
    else:
        payload = "[" * 200_000 + "]" * 200_000
    rig.fake.fail_next("videos", 200, body=payload)
    discovery = rig.discovery(["alice", "bob"], concurrency=1)
    outcomes = {o.channel: o for o in await discovery.run_pass()}
    assert outcomes["bob"].error is None
    if body == "duplicate":
        assert outcomes["alice"].error is None
        assert await rig.rows(
            "SELECT count(*) FROM vods WHERE twitch_vod_id = %s", video["id"]
        ) == [(1,)]
    else:
        assert "without JSON" in (outcomes["alice"].error or "")
    assert alice_user


async def test_a_persistent_401_is_retried_exactly_once(rig: Rig) -> None:
    """Helix answering 401 even to a fresh token: two requests, one new token, then a clear error."""
    rig.fake.add_channel("alice")
    helix, _ = rig.client()
    await helix.users(["alice"])
    rig.fake.reset()
    rig.fake.fail_next("videos", 401, times=5)
    with pytest.raises(HelixRequestError) as caught:
        await helix.videos_page(rig.fake.channel("alice").user_id)
    assert caught.value.status == 401
    assert (rig.fake.count("videos"), rig.fake.count("token")) == (2, 1)


async def test_a_429_with_retry_after_and_no_reset_is_honoured(rig: Rig) -> None:
    """Without Ratelimit-Reset, Retry-After decides the wait."""
    rig.fake.add_channel("alice")
    helix, _ = rig.client()
    await helix.users(["alice"])
    rig.fake.reset()
    rig.fake.fail_next("videos", 429, headers={"Retry-After": "2"})
    await helix.videos_page(rig.fake.channel("alice").user_id)
    first, second = [r for r in rig.fake.received if r.endpoint == "videos"]
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.9


async def test_a_trickling_server_cannot_outlast_the_timeout(db_url: str) -> None:
    """HELIX_TIMEOUT bounds a whole call: a server sending one byte every 0.2 s is cut off, retried, given up."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fake = FakeTwitch()
    try:
        async with LocalServer(fake) as tokens, httpx.AsyncClient(timeout=5) as http:
            metrics = Metrics("t")
            token = AppToken(http, auth_url=f"{tokens.url}/oauth2", client_id=fake.client_id,
                             client_secret=Secret("fake-client-secret"), metrics=metrics)  # fmt: skip
            helix = HelixClient(http, token, api_url=f"http://127.0.0.1:{port}/helix", client_id=fake.client_id,
                                metrics=metrics, timeout_s=0.5, retry=RetryPolicy(attempts=2, base_s=0.01))  # fmt: skip
            loop = asyncio.get_running_loop()
            begin = loop.time()
            with pytest.raises(HelixUnavailable, match="TimeoutError"):
                await helix.videos_page("1")
            assert loop.time() - begin < 2.5
    finally:
        server.close()


async def test_liveness_follows_streams_alone_and_duration_alone(rig: Rig) -> None:
    """/streams saying live holds an archive that stopped growing; a growing one is held even when /streams says offline."""
    rig.fake.add_channel("alice")
    rig.fake.go_live("alice")
    vod_id = rig.fake.live_vod("alice")["id"]
    discovery = rig.discovery(["alice"])
    await discovery.run_pass()
    await discovery.run_pass()  # same duration, but /streams says live
    assert await rig.state(vod_id) == "live"
    rig.fake.end_stream("alice")
    rig.fake.video(vod_id)["duration"] = (
        "2h0m0s"  # /streams already offline, the archive still grows
    )
    await discovery.run_pass()
    assert await rig.state(vod_id) == "live"
    await discovery.run_pass()  # offline and no longer growing
    assert await rig.state(vod_id) == "queued"


async def test_a_replica_that_lost_its_lease_changes_nothing(rig: Rig) -> None:
    """When a lease expires and another replica claims the channel, the first one's release leaves the new lease alone."""
    rig.fake.add_channel("alice")
    await rig.discovery(["alice"]).run_pass()  # creates the channel row
    first = await rig.store.channel_claim("alice", owner="replica-1", lease_s=0, min_gap_s=0)
    second = await rig.store.channel_claim("alice", owner="replica-2", lease_s=300, min_gap_s=0)
    assert first is not None
    assert second is not None
    assert not await rig.store.channel_renew("alice", owner="replica-1", lease_s=300)
    await rig.store.channel_release("alice", owner="replica-1",
                                    result=PassResult(watermark_at=None, full_read=False, verified=False, error="late"))  # fmt: skip
    rows = await rig.rows(
        "SELECT poll_lease_owner, poll_lease_until IS NOT NULL, last_error FROM channels"
    )
    assert rows == [("replica-2", True, None)]


async def test_concurrent_upserts_of_the_same_page_store_each_vod_once(rig: Rig) -> None:
    """The upsert itself is race-free: four writers of one page at once leave one row per VOD, one insert each."""
    rig.fake.add_channel("alice")
    helix, _ = rig.client()
    user = (await helix.users(["alice"]))["alice"]
    rig.fake.add_vods("alice", 100)
    page = await helix.videos_page(user.id)
    discovery = rig.discovery(["alice"])
    record = ChannelRecord("alice", user.id, user.display_name, user.broadcaster_type)
    rows = [discovery._row(v, record, frozenset(), None) for v in page.videos]
    results = await asyncio.gather(*(rig.store.vods_upsert(rows) for _ in range(4)))
    inserted = sum(new for result in results for new, _ in result.values())
    assert inserted == 100
    assert await rig.rows("SELECT count(*), count(DISTINCT twitch_vod_id) FROM vods") == [
        (100, 100)
    ]


@pytest.mark.parametrize(
    ("knob", "reason"),
    [
        ("html_next", "without JSON"),
        ("malformed_json_next", "without JSON"),
        ("huge_page_next", "larger than"),
    ],
)
async def test_a_bad_page_is_logged_and_skipped_without_harm(
    rig: Rig, log_lines: io.StringIO, knob: str, reason: str
) -> None:
    """HTML, broken JSON or an enormous page ends that channel's pass with a logged reason; others and stored rows are untouched."""
    for login in ("alice", "bob"):
        rig.fake.add_channel(login)
        rig.fake.add_vods(login, 5)
    discovery = rig.discovery(["alice", "bob"])
    await discovery.run_pass()
    before = await rig.rows("SELECT twitch_vod_id, title, state, duration_s FROM vods ORDER BY 1")
    rig.fake.add_vod("bob", created_at=datetime.now(UTC))
    getattr(rig.fake, knob)("videos")
    outcomes = {o.channel: o for o in await discovery.run_pass()}
    failed = [o for o in outcomes.values() if o.error]
    assert len(failed) == 1
    assert reason in (failed[0].error or "")
    after = await rig.rows("SELECT twitch_vod_id, title, state, duration_s FROM vods ORDER BY 1")
    assert set(before) <= set(after)
    reported = logged(log_lines, "discovery_channel_failed")
    assert reported[0]["channel"] == failed[0].channel
    await discovery.run_pass()
    assert await rig.rows("SELECT count(*) FROM vods") == [(11,)]


async def test_a_malformed_item_is_skipped_alone(rig: Rig, log_lines: io.StringIO) -> None:
    """One video with wrong types is logged and skipped; the rest of the page is stored; it is not marked gone."""
    rig.fake.add_channel("alice")
    vods = rig.fake.add_vods("alice", 5)
    rig.fake.corrupt_fields_next("videos", video_id=vods[1]["id"])
    (outcome,) = await rig.discovery(["alice"]).run_pass()
    assert outcome.rejected == 1
    assert await rig.rows("SELECT count(*) FROM vods") == [(4,)]
    (rejected,) = logged(log_lines, "helix_item_rejected")
    assert rejected["channel"] == "alice"


async def test_a_looping_cursor_stops_the_pass(rig: Rig) -> None:
    """A cursor that never ends is detected; the pass ends with a reason and the catalogue is not marked complete."""
    rig.fake.add_channel("alice")
    rig.fake.add_vods("alice", 250)
    rig.fake.looping_cursor("alice")
    (outcome,) = await asyncio.wait_for(rig.discovery(["alice"]).run_pass(), 30)
    assert "does not end" in (outcome.error or "")
    assert not outcome.complete
    assert await rig.rows("SELECT watermark_at, full_read_at FROM channels") == [(None, None)]


async def test_a_wrong_client_secret_is_reported_and_the_loop_goes_on(rig: Rig) -> None:
    """Twitch refusing the secret fails the pass without raising, and the readiness check says why."""
    rig.fake.add_channel("alice")
    rig.fake.add_vods("alice", 2)
    rig.fake.client_secret = "rotated-on-twitch"
    helix, token = rig.client()
    discovery = Discovery(
        helix, rig.store, rig.metrics, channels=["alice"], retention_overrides={}, interval_s=300
    )
    assert await discovery.run_pass() == []
    verdict = await token.check()
    assert not verdict.ok
    assert "invalid client secret" in verdict.detail
    rig.fake.client_secret = "fake-client-secret"
    (outcome,) = await discovery.run_pass()
    assert outcome.error is None
    assert (await token.check()).ok


async def test_two_replicas_at_once_store_each_vod_once(rig: Rig) -> None:
    """Two discoveries (own clients, one database) running together insert each VOD exactly once."""
    for login in ("alice", "bob"):
        rig.fake.add_channel(login)
        rig.fake.add_vods(login, 120)
    one, two = rig.discovery(["alice", "bob"]), rig.discovery(["alice", "bob"])
    results = await asyncio.gather(one.run_pass(), two.run_pass(), one.run_pass())
    assert await rig.rows("SELECT count(*), count(DISTINCT twitch_vod_id) FROM vods") == [
        (240, 240)
    ]
    discovered = sum(o.discovered for outcomes in results for o in outcomes)
    assert discovered == 240


async def test_queue_order_is_priority_then_nearest_expiry(rig: Rig) -> None:
    """The listing puts manual priority first, then the VOD Twitch deletes soonest."""
    rig.fake.add_channel("partner", broadcaster_type="partner")
    rig.fake.add_channel("plain")
    now = datetime.now(UTC)
    p = rig.fake.add_vod("partner", created_at=now - timedelta(days=1))  # expires in ~59 days
    q = rig.fake.add_vod("plain", created_at=now - timedelta(days=1))  # expires in ~6 days
    r = rig.fake.add_vod("plain", created_at=now - timedelta(hours=1))  # expires in ~7 days
    await rig.discovery(["partner", "plain"]).run_pass()
    listed = [
        v["twitch_vod_id"]
        for v in await rig.store.vods_list(channel=None, state=None, limit=10, offset=0)
    ]
    assert listed == [q["id"], r["id"], p["id"]]
    async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as conn:
        await conn.execute("UPDATE vods SET priority = 10 WHERE twitch_vod_id = %s", [p["id"]])
    listed = [
        v["twitch_vod_id"]
        for v in await rig.store.vods_list(channel=None, state=None, limit=10, offset=0)
    ]
    assert listed[0] == p["id"]
