"""Bad input on every route is a 4xx naming the parameter, and /openapi.json describes every route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import psycopg
import psycopg_pool
import pytest

from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.uploads import UploadStore
from vodarchiver.health import DatabaseCheck
from vodarchiver.metrics import Metrics
from vodarchiver.web import Api, build_app


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (ASGI, loopback client, no ADMIN_TOKEN) over a real database with one VOD."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, state) VALUES ('42', 'c', 'queued')"
        )
    metrics = Metrics("9.9.9")
    probe = DatabaseProbe(db_url)
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        api = Api(store=UploadStore(pool), probe=probe, metrics=metrics,
                  checks=[DatabaseCheck(probe)], version="9.9.9", started_at=datetime.now(UTC),
                  chat=ChatStore(pool))  # fmt: skip
        transport = httpx.ASGITransport(app=build_app(api, metrics))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield c
    await probe.aclose()


BAD_GETS = [
    ("/vods/%00", "vod_id"),
    ("/vods/%00/chat", "vod_id"),
    ("/vods/4%0a2", "vod_id"),
    ("/vods/" + "9" * 33, "vod_id"),
    ("/vods/%E2%80%AE42", "vod_id"),
    ("/vods?channel=al%00ice", "channel"),
    ("/vods?channel=al%1bice", "channel"),
    ("/vods?channel=" + "a" * 300, "channel"),
    ("/vods?offset=9223372036854775808", "offset"),
    ("/vods?offset=99999999999999999999", "offset"),
    ("/vods?offset=-1", "offset"),
    ("/vods?offset=1e3", "offset"),
    ("/vods?offset=10001", "offset"),
    ("/vods?after=junk", "after"),
    ("/vods?after=0_2026-13-01T00:00:00Z_5", "after"),
    ("/vods?after=0_2026-01-01T00:00:00_5", "after"),
    ("/vods?after=0_9999-12-31T23:00:00-05:00_5", "after"),
    ("/vods?after=0_0001-01-01T00:30:00%2B01:00_5", "after"),
    ("/vods?after=0_infinity_0", "after"),
    ("/vods?after=9999999999_infinity_5", "after"),
    ("/vods?after=0_infinity_99999999999999999999", "after"),
    ("/vods?limit=0", "limit"),
    ("/vods?limit=501", "limit"),
    ("/vods?limit=abc", "limit"),
    ("/vods?limit=1&limit=2", "limit"),
    ("/vods?state=nope", "state"),
    ("/vods?state=queued%00", "state"),
    ("/vods/42/chat?from=inf", "from"),
    ("/vods/42/chat?from=nan", "from"),
    ("/vods/42/chat?from=-Infinity", "from"),
    ("/vods/42/chat?from=1e400", "from"),
    ("/vods/42/chat?from=0x10", "from"),
    ("/vods/42/chat?to=nan", "to"),
    ("/vods/42/chat?to=-1", "to"),
    ("/vods/42/chat?limit=5001", "limit"),
    ("/vods/42/chat?after=junk", "after"),
    ("/vods/42/chat?after=99999999999999999999:x", "after"),
    ("/vods/42/chat?after=1:%00", "after"),
]


@pytest.mark.parametrize(("url", "parameter"), BAD_GETS)
async def test_malformed_query_and_path_values_are_400(
    client: httpx.AsyncClient, url: str, parameter: str
) -> None:
    """Each malformed value answers 400 with an error naming the parameter, never 500."""
    answer = await client.get(url)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["parameter"] == parameter
    assert body["error"].startswith(f"{parameter}:")


@pytest.mark.parametrize(
    ("content", "parameter", "status"),
    [
        (b"{", "body", 400),
        (b"[]", "body", 400),
        (b'"x"', "body", 400),
        (b"\xff\xfe", "body", 400),
        (b"[" * 100_000, "body", 413),
        (b"[" * 5000 + b"]" * 5000, "body", 400),
        (b'{"extra": 1}', "extra", 400),
    ],
)
async def test_bad_json_bodies_are_4xx(
    client: httpx.AsyncClient, content: bytes, parameter: str, status: int
) -> None:
    """A body that is not a JSON object of the declared fields is refused and the VOD is not canceled."""
    answer = await client.post(
        "/admin/vods/42/cancel", content=content, headers={"Content-Type": "application/json"}
    )
    assert (answer.status_code, answer.json()["parameter"]) == (status, parameter)
    assert (await client.get("/vods/42")).json()["state"] == "queued"


async def test_login_body_is_validated(client: httpx.AsyncClient) -> None:
    """/login without its token field, or with a non-string one, is a 400 naming `token`."""
    for body in ({}, {"token": 5}, {"token": "a\x00b"}):
        answer = await client.post("/login", json=body)
        assert (answer.status_code, answer.json()["parameter"]) == (400, "token")


async def test_good_values_still_work(client: httpx.AsyncClient) -> None:
    """The declarations accept what the API documents: ids, pages, seconds and cursors."""
    assert (await client.get("/vods/42")).status_code == 200
    assert (await client.get("/vods/43")).status_code == 404
    page = await client.get("/vods", params={"channel": "C", "state": "queued", "limit": "1",
                                             "offset": "10000"})  # fmt: skip
    assert page.status_code == 200
    assert page.json()["items"] == []
    for after in ("-3_infinity_1", "7_2026-01-01T00:00:00.5Z_9", "0_2026-01-01T00:00:00+05:30_1"):
        listed = await client.get("/vods", params={"after": after})
        assert listed.status_code == 200, (after, listed.text)
    chat = await client.get("/vods/42/chat", params={"from": "1.5", "to": "1e3", "after": "5:ab-c"})
    assert chat.status_code == 200
    assert (await client.get("/vods", params={"channel": ""})).json()["items"][0]["id"] == "42"


async def test_openapi_describes_every_route(client: httpx.AsyncClient) -> None:
    """/openapi.json lists every route with its parameters, bodies and the admin security."""
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in ("/healthz", "/readyz", "/status", "/metrics", "/vods", "/vods/{vod_id}",
                 "/vods/{vod_id}/chat", "/admin/vods/{vod_id}/cancel", "/login", "/logout",
                 "/session", "/openapi.json"):  # fmt: skip
        assert path in paths, path
    offset = next(p for p in paths["/vods"]["get"]["parameters"] if p["name"] == "offset")
    assert offset["schema"] == {"type": "integer", "minimum": 0, "maximum": 10_000, "default": 0}
    assert any(p["name"] == "after" for p in paths["/vods"]["get"]["parameters"])
    cancel = paths["/admin/vods/{vod_id}/cancel"]["post"]
    assert cancel["security"] == [{"bearer": []}, {"session": []}]
    assert {"401", "403", "404", "409", "415"} <= set(cancel["responses"])
    login = paths["/login"]["post"]["requestBody"]["content"]
    assert set(login) == {"application/json", "application/x-www-form-urlencoded"}
    assert "security" not in paths["/vods"]["get"]
