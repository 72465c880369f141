"""The fake Twitch over real HTTP on 127.0.0.1: tokens, Helix listings, rate limits and knobs."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch, format_duration, parse_duration


@pytest.fixture
def fake() -> FakeTwitch:
    """A fake Twitch with one channel and default credentials."""
    twitch = FakeTwitch()
    twitch.add_channel("streamer", user_id="1001", broadcaster_type="affiliate")
    return twitch


@pytest.fixture
async def client(fake: FakeTwitch) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at the fake served on a free local port."""
    async with (
        LocalServer(fake) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        yield http


async def app_token(
    client: httpx.AsyncClient, secret: str = FakeTwitch().client_secret
) -> httpx.Response:
    """POST /oauth2/token with the client-credentials grant."""
    return await client.post(
        "/oauth2/token",
        data={
            "client_id": "fake-client-id",
            "client_secret": secret,
            "grant_type": "client_credentials",
        },
    )


async def helix_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """Headers of an authorised Helix request, with a fresh app token."""
    token = (await app_token(client)).json()["access_token"]
    return {"Client-Id": "fake-client-id", "Authorization": f"Bearer {token}"}


async def test_token_is_issued_and_validates(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """A client-credentials grant gives a bearer token that /oauth2/validate accepts."""
    response = await app_token(client)
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 5011271
    assert body["token_type"] == "bearer"
    valid = await client.get(
        "/oauth2/validate", headers={"Authorization": f"OAuth {body['access_token']}"}
    )
    assert valid.status_code == 200
    assert valid.json()["client_id"] == "fake-client-id"
    assert valid.json()["scopes"] == []
    invalid = await client.get("/oauth2/validate", headers={"Authorization": "OAuth nope"})
    assert invalid.status_code == 401
    assert fake.received[0].form["grant_type"] == ["client_credentials"]
    assert [r.endpoint for r in fake.received] == ["token", "validate", "validate"]


async def test_token_rejects_bad_credentials(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """A wrong secret, an unknown client and a rotated secret all answer 400 with Twitch's message."""
    wrong = await app_token(client, secret="guess")
    assert wrong.status_code == 400
    assert wrong.json() == {"status": 400, "message": "invalid client secret"}
    unknown = await client.post(
        "/oauth2/token",
        data={"client_id": "x", "client_secret": "y", "grant_type": "client_credentials"},
    )
    assert unknown.json() == {"status": 400, "message": "invalid client"}
    fake.client_secret = "other"
    assert (await app_token(client)).status_code == 400
    fake.reset()
    assert (await app_token(client)).status_code == 200
    assert fake.count("token") == 1


async def test_videos_paginate_newest_first(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """250 archives with first=100 come in 3 pages, newest first, each id once, last page uncursored."""
    made = fake.add_vods("streamer", 250)
    headers = await helix_headers(client)
    seen: list[dict[str, object]] = []
    pages = []
    params: dict[str, str | int] = {"user_id": "1001", "type": "archive", "first": 100}
    while True:
        response = await client.get("/helix/videos", params=params, headers=headers)
        assert response.status_code == 200
        page = response.json()
        pages.append(page)
        seen += page["data"]
        cursor = page["pagination"].get("cursor")
        if cursor is None:
            break
        params["after"] = cursor
    assert [len(p["data"]) for p in pages] == [100, 100, 50]
    assert pages[-1]["pagination"] == {}
    assert [v["id"] for v in seen] == [v["id"] for v in made]
    assert len({v["id"] for v in seen}) == 250
    created = [str(v["created_at"]) for v in seen]
    assert created == sorted(created, reverse=True)
    video = seen[0]
    assert video["duration"] == "1h0m0s"
    assert video["type"] == "archive"
    assert video["muted_segments"] is None
    assert video["url"] == f"https://www.twitch.tv/videos/{video['id']}"


async def test_video_id_lookup_and_404(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """id= returns the videos that exist; none existing is a 404; deleted videos are gone."""
    first, second = fake.add_vods("streamer", 2)
    headers = await helix_headers(client)
    found = await client.get(
        "/helix/videos", params=[("id", first["id"]), ("id", "999")], headers=headers
    )
    assert [v["id"] for v in found.json()["data"]] == [first["id"]]
    fake.delete_vod(first["id"])
    gone = await client.get("/helix/videos", params={"id": first["id"]}, headers=headers)
    assert gone.status_code == 404
    assert gone.json()["error"] == "Not Found"
    listing = await client.get("/helix/videos", params={"user_id": "1001"}, headers=headers)
    assert [v["id"] for v in listing.json()["data"]] == [second["id"]]
    too_many = await client.get(
        "/helix/videos", params={"user_id": "1001", "first": 101}, headers=headers
    )
    assert too_many.status_code == 400


async def test_helix_requires_a_valid_token(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """No token, a revoked token or a missing Client-Id answer 401 Invalid OAuth token-style errors."""
    bare = await client.get("/helix/users", params={"login": "streamer"})
    assert bare.status_code == 401
    assert bare.json()["error"] == "Unauthorized"
    headers = await helix_headers(client)
    ok = await client.get("/helix/users", params={"login": "streamer"}, headers=headers)
    assert ok.status_code == 200
    user = ok.json()["data"][0]
    assert (user["id"], user["login"], user["broadcaster_type"]) == (
        "1001",
        "streamer",
        "affiliate",
    )
    no_client = await client.get(
        "/helix/users",
        params={"login": "streamer"},
        headers={"Authorization": headers["Authorization"]},
    )
    assert no_client.status_code == 401
    fake.revoke_tokens()
    revoked = await client.get("/helix/users", params={"login": "streamer"}, headers=headers)
    assert revoked.json() == {
        "error": "Unauthorized",
        "status": 401,
        "message": "Invalid OAuth token",
    }
    assert [r.status for r in fake.received if r.endpoint == "users"] == [401, 200, 401, 401]


async def test_unknown_login_gives_empty_data(client: httpx.AsyncClient) -> None:
    """Unknown logins are simply absent from /helix/users."""
    headers = await helix_headers(client)
    response = await client.get(
        "/helix/users", params=[("login", "nobody"), ("login", "Streamer")], headers=headers
    )
    assert [u["login"] for u in response.json()["data"]] == ["streamer"]
    none = await client.get("/helix/users", params={"login": "nobody"}, headers=headers)
    assert none.json() == {"data": []}


async def test_ratelimit_headers_and_429(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """Every Helix answer reports the bucket; an empty bucket answers 429 until its reset."""
    headers = await helix_headers(client)
    response = await client.get("/helix/streams", params={"user_id": "1001"}, headers=headers)
    assert response.headers["Ratelimit-Limit"] == "800"
    assert response.headers["Ratelimit-Remaining"] == "799"
    assert int(response.headers["Ratelimit-Reset"]) >= time.time()
    fake.set_ratelimit(0, 2)
    limited = await client.get("/helix/streams", params={"user_id": "1001"}, headers=headers)
    assert limited.status_code == 429
    assert limited.json()["status"] == 429
    assert limited.headers["Ratelimit-Remaining"] == "0"
    assert 0 <= int(limited.headers["Ratelimit-Reset"]) - math.floor(time.time()) <= 3
    fake.set_ratelimit(0, 0.05)
    await asyncio.sleep(0.1)
    refilled = await client.get("/helix/streams", params={"user_id": "1001"}, headers=headers)
    assert refilled.status_code == 200
    assert refilled.headers["Ratelimit-Remaining"] == "799"


async def test_answer_429_next_reports_reset(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """answer_429_next answers one 429 with Remaining 0 and a reset in the future, then recovers."""
    headers = await helix_headers(client)
    fake.answer_429_next("users", 30)
    limited = await client.get("/helix/users", params={"login": "streamer"}, headers=headers)
    assert limited.status_code == 429
    assert limited.headers["Ratelimit-Remaining"] == "0"
    assert int(limited.headers["Ratelimit-Reset"]) >= time.time() + 29
    ok = await client.get("/helix/users", params={"login": "streamer"}, headers=headers)
    assert ok.status_code == 200


async def test_streams_follow_go_live_and_end(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """go_live lists the stream and a growing archive; end_stream leaves only the archive."""
    fake.add_vods("streamer", 1)
    headers = await helix_headers(client)
    params = {"user_login": "streamer"}
    offline = await client.get("/helix/streams", params=params, headers=headers)
    assert offline.json() == {"data": [], "pagination": {}}
    stream = fake.go_live("streamer", stream_id="555")
    live = await client.get("/helix/streams", params=params, headers=headers)
    assert live.json()["data"] == [stream]
    assert stream["type"] == "live"
    fake.grow_live_vod("streamer", 3725)
    videos = await client.get("/helix/videos", params={"user_id": "1001"}, headers=headers)
    top = videos.json()["data"][0]
    assert (top["stream_id"], top["duration"]) == ("555", "1h2m5s")
    assert len(videos.json()["data"]) == 2
    fake.end_stream("streamer")
    ended = await client.get("/helix/streams", params={"user_id": "1001"}, headers=headers)
    assert ended.json()["data"] == []
    after = await client.get("/helix/videos", params={"user_id": "1001"}, headers=headers)
    assert after.json()["data"][0] == top


async def test_html_and_fail_knobs(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """html_next and fail_next answer in the order queued, then the fake answers normally."""
    headers = await helix_headers(client)
    fake.html_next("videos")
    fake.fail_next("videos", 503, times=2)
    params = {"user_id": "1001"}
    html = await client.get("/helix/videos", params=params, headers=headers)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    first = await client.get("/helix/videos", params=params, headers=headers)
    second = await client.get("/helix/videos", params=params, headers=headers)
    assert (first.status_code, second.status_code) == (503, 503)
    assert second.json()["status"] == 503
    normal = await client.get("/helix/videos", params=params, headers=headers)
    assert normal.json() == {"data": [], "pagination": {}}
    assert [r.status for r in fake.received if r.endpoint == "videos"] == [200, 503, 503, 200]
    fake.fail_next("token", 500, body="oops", content_type="text/plain")
    assert (await app_token(client)).text == "oops"


async def test_body_knobs(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """malformed_json_next, huge_page_next and corrupt_fields_next alter the next 200 answers."""
    [video] = fake.add_vods("streamer", 1)
    headers = await helix_headers(client)
    params = {"user_id": "1001"}
    fake.malformed_json_next("videos")
    fake.huge_page_next("videos", size_bytes=100_000)
    fake.corrupt_fields_next("videos", video_id=video["id"])
    cut = await client.get("/helix/videos", params=params, headers=headers)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    huge = await client.get("/helix/videos", params=params, headers=headers)
    assert len(huge.content) == 100_000
    assert huge.json()["data"][0]["id"] == video["id"]
    bad = (await client.get("/helix/videos", params=params, headers=headers)).json()["data"][0]
    assert bad["id"] is None
    assert "created_at" not in bad
    assert bad["duration"] == 42
    assert fake.video(video["id"])["duration"] == "1h0m0s"


async def test_looping_cursor_repeats(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """With looping_cursor every page hands back the first page's cursor."""
    fake.add_vods("streamer", 5)
    fake.looping_cursor("streamer")
    headers = await helix_headers(client)
    params: dict[str, str | int] = {"user_id": "1001", "first": 2}
    first = (await client.get("/helix/videos", params=params, headers=headers)).json()
    cursor = first["pagination"]["cursor"]
    for _ in range(3):
        params["after"] = cursor
        page = (await client.get("/helix/videos", params=params, headers=headers)).json()
        assert page["pagination"]["cursor"] == cursor


async def test_latency_and_reset(client: httpx.AsyncClient, fake: FakeTwitch) -> None:
    """latency_s delays answers; reset(all=True) forgets channels, knobs and the record."""
    fake.latency_s = 0.1
    started = time.monotonic()
    await app_token(client)
    assert time.monotonic() - started >= 0.1
    fake.fail_next("users", 500)
    fake.reset(all=True)
    assert fake.received == []
    assert fake.latency_s == 0.0
    assert fake.channels == {}
    headers = await helix_headers(client)
    response = await client.get("/helix/users", params={"login": "streamer"}, headers=headers)
    assert response.json() == {"data": []}


def test_durations_use_twitch_format() -> None:
    """Durations read and write as Helix spells them."""
    assert [format_duration(s) for s in (0, 45, 720, 11313)] == ["0s", "45s", "12m0s", "3h8m33s"]
    assert [parse_duration(t) for t in ("45s", "12m0s", "3h8m33s", "2h")] == [45, 720, 11313, 7200]


def test_add_vod_keeps_newest_first(fake: FakeTwitch) -> None:
    """add_vod places a video by created_at among the channel's videos."""
    older = fake.add_vod("streamer", created_at=datetime(2024, 1, 1, tzinfo=UTC))
    newer = fake.add_vod("streamer", created_at=datetime(2024, 3, 1, tzinfo=UTC))
    middle = fake.add_vod(
        "streamer",
        created_at=datetime(2024, 2, 1, tzinfo=UTC),
        muted_segments=[{"duration": 30, "offset": 120}],
    )
    assert [v["id"] for v in fake.channel("streamer").videos] == [
        newer["id"],
        middle["id"],
        older["id"],
    ]
    assert middle["created_at"] == "2024-02-01T00:00:00Z"
