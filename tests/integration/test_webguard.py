"""The admin safety rules over real HTTP (uvicorn) and a real PostgreSQL: refused requests change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import psycopg
import psycopg_pool
import pytest

from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.uploads import UploadStore
from vodarchiver.health import DatabaseCheck
from vodarchiver.metrics import Metrics
from vodarchiver.values import HostPort, Secret
from vodarchiver.web import Api, HttpServer, bind, bound_address, build_app
from vodarchiver.webguard import GuardPolicy

TOKEN = "s3cret-admin-token-0123456789"
VOD = "1234567890"


@asynccontextmanager
async def serving(db_url: str, policy: GuardPolicy) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The real app behind uvicorn on a free loopback port, with one queued VOD in the database."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, state) VALUES (%s, 'c', 'queued')", [VOD]
        )
    metrics = Metrics("9.9.9")
    probe = DatabaseProbe(db_url)
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        api = Api(store=UploadStore(pool), probe=probe, metrics=metrics,
                  checks=[DatabaseCheck(probe)], version="9.9.9", started_at=datetime.now(UTC))  # fmt: skip
        sock = bind(HostPort("127.0.0.1", 0))
        server = HttpServer(build_app(api, metrics, policy), sock)
        task = asyncio.create_task(server.serve())
        base = f"http://127.0.0.1:{bound_address(sock).port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                yield base, client
        finally:
            server.stop()
            await task
            sock.close()
    await probe.aclose()


async def state_of(db_url: str) -> str:
    """The VOD's state as stored."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        row = await (
            await conn.execute("SELECT state FROM vods WHERE twitch_vod_id = %s", [VOD])
        ).fetchone()
    assert row is not None
    return str(row[0])


CANCEL = f"/admin/vods/{VOD}/cancel"
Attempt = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]

REFUSED_WITH_TOKEN_SET: list[tuple[str, Attempt, int, str]] = [
    ("cross-site form POST with the token",
     lambda c: c.post(CANCEL, data={"x": "1"}, headers={"Authorization": f"Bearer {TOKEN}",
                                                         "Origin": "https://evil.example"}),
     403, "Origin"),
    ("form POST with Sec-Fetch-Site cross-site",
     lambda c: c.post(CANCEL, content=b"{}", headers={"Authorization": f"Bearer {TOKEN}",
                                                      "Content-Type": "application/json",
                                                      "Sec-Fetch-Site": "cross-site"}),
     403, "Sec-Fetch-Site"),
    ("same-origin form POST with the token",
     lambda c: c.post(CANCEL, data={"x": "1"}, headers={"Authorization": f"Bearer {TOKEN}"}),
     415, "Content-Type"),
    ("text/plain POST with the token",
     lambda c: c.post(CANCEL, content=b'{"a":1}', headers={"Authorization": f"Bearer {TOKEN}",
                                                           "Content-Type": "text/plain"}),
     415, "Content-Type"),
    ("multipart POST with the token",
     lambda c: c.post(CANCEL, files={"f": b"x"}, headers={"Authorization": f"Bearer {TOKEN}"}),
     415, "Content-Type"),
    ("foreign Host (a rebinding DNS name) with the token",
     lambda c: c.post(CANCEL, headers={"Authorization": f"Bearer {TOKEN}",
                                       "Host": "attacker.example"}),
     400, "Host"),
    ("missing token", lambda c: c.post(CANCEL), 401, "Authorization"),
    ("wrong token", lambda c: c.post(CANCEL, headers={"Authorization": "Bearer not-the-token-at-all"}),
     401, "Authorization"),
    ("the token as a Basic credential",
     lambda c: c.post(CANCEL, headers={"Authorization": f"Basic {TOKEN}"}), 401, "Authorization"),
    ("a forged session cookie",
     lambda c: c.post(CANCEL, headers={"Cookie": "vodarchiver_session=v1.9999999999.abc.def"}),
     401, "Authorization"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("attempt", "status", "parameter"),
    [pytest.param(a, s, p, id=name) for name, a, s, p in REFUSED_WITH_TOKEN_SET],
)
async def test_refused_requests_change_nothing(
    db_url: str, attempt: Attempt, status: int, parameter: str
) -> None:
    """Each unsafe or unauthenticated cancel is refused with its 4xx, names the header, and the VOD stays queued."""
    async with serving(db_url, GuardPolicy(admin_token=Secret(TOKEN))) as (_, client):
        answer = await attempt(client)
        assert answer.status_code == status, answer.text
        assert answer.json()["parameter"] == parameter
        assert TOKEN not in answer.text
    assert await state_of(db_url) == "queued"


async def test_the_right_token_cancels(db_url: str) -> None:
    """With ADMIN_TOKEN set, the bearer token (with or without a JSON body) cancels the VOD."""
    async with serving(db_url, GuardPolicy(admin_token=Secret(TOKEN))) as (base, client):
        answer = await client.post(
            CANCEL, json={}, headers={"Authorization": f"Bearer {TOKEN}", "Origin": base}
        )  # same origin
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "canceled"
    assert await state_of(db_url) == "canceled"


async def test_loopback_without_token_works_when_admin_token_is_unset(db_url: str) -> None:
    """Without ADMIN_TOKEN a loopback client cancels with an empty body and no credentials."""
    async with serving(db_url, GuardPolicy()) as (_, client):
        answer = await client.post(CANCEL)
        assert answer.status_code == 200, answer.text
    assert await state_of(db_url) == "canceled"


async def test_proxied_loopback_request_is_not_trusted(db_url: str) -> None:
    """A request relayed by a local proxy (X-Forwarded-For) is not treated as a loopback client."""
    async with serving(db_url, GuardPolicy()) as (_, client):
        answer = await client.post(CANCEL, headers={"X-Forwarded-For": "198.51.100.7"})
        assert (answer.status_code, answer.json()["parameter"]) == (403, "client")
    assert await state_of(db_url) == "queued"


async def test_non_loopback_client_is_refused_without_token(db_url: str) -> None:
    """Without ADMIN_TOKEN a client outside loopback gets 403 and the VOD stays queued (ASGI client address)."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, state) VALUES (%s, 'c', 'queued')", [VOD]
        )
    metrics = Metrics("9.9.9")
    probe = DatabaseProbe(db_url)
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        api = Api(store=UploadStore(pool), probe=probe, metrics=metrics, checks=[],
                  version="9.9.9", started_at=datetime.now(UTC))  # fmt: skip
        app = build_app(api, metrics, GuardPolicy())
        transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            refused = await client.post(CANCEL)
            public = await client.get(f"/vods/{VOD}")
        local = httpx.ASGITransport(app=app, client=("::1", 4000))
        async with httpx.AsyncClient(transport=local, base_url="http://[::1]:8080") as client:
            allowed = await client.post(CANCEL)
    await probe.aclose()
    assert (refused.status_code, refused.json()["parameter"]) == (403, "client")
    assert public.status_code == 200  # only /admin/ is restricted
    assert allowed.status_code == 200


async def test_login_cookie_and_csrf(db_url: str) -> None:
    """Login sets an HttpOnly SameSite=Strict cookie; a cookie POST needs X-CSRF-Token; with it, it cancels."""
    async with serving(db_url, GuardPolicy(admin_token=Secret(TOKEN))) as (_, client):
        before = (await client.get("/session")).json()
        assert before == {"required": True, "authenticated": False, "actor": None, "csrf": None}
        wrong = await client.post("/login", json={"token": "wrong-wrong-wrong-wrong"})
        assert (wrong.status_code, "set-cookie" in wrong.headers) == (401, False)
        login = await client.post(
            "/login", json={"token": TOKEN}
        )  # what the login page's script posts
        assert login.status_code == 200, login.text
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("vodarchiver_session=")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/" in cookie
        assert TOKEN not in cookie
        csrf = login.json()["csrf"]
        session = (await client.get("/session")).json()
        assert session == {
            "required": True,
            "authenticated": True,
            "actor": "session",
            "csrf": csrf,
        }
        without = await client.post(CANCEL)
        assert (without.status_code, without.json()["parameter"]) == (403, "X-CSRF-Token")
        forged = await client.post(CANCEL, headers={"X-CSRF-Token": csrf[:-2] + "xx"})
        assert forged.status_code == 403
        assert await state_of(db_url) == "queued"
        done = await client.post(CANCEL, headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200, done.text
        out = await client.post("/logout")
        assert "Max-Age=0" in out.headers["set-cookie"]
        client.cookies.clear()
        assert (await client.post(CANCEL, headers={"X-CSRF-Token": csrf})).status_code == 401
    assert await state_of(db_url) == "canceled"


async def test_session_cookie_of_another_token_is_refused(db_url: str) -> None:
    """A session signed under an earlier ADMIN_TOKEN is not valid under the current one."""
    async with serving(db_url, GuardPolicy(admin_token=Secret("an-older-token-0000000"))) as (_, c):
        login = await c.post("/login", json={"token": "an-older-token-0000000"})
        cookie = c.cookies["vodarchiver_session"]
        assert login.status_code == 200
    async with serving_again(db_url) as client:
        client.cookies.set("vodarchiver_session", cookie)
        answer = await client.post(CANCEL, headers={"X-CSRF-Token": login.json()["csrf"]})
        assert answer.status_code == 401


@asynccontextmanager
async def serving_again(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the current token over ASGI, on the same database (the VOD already exists)."""
    metrics = Metrics("9.9.9")
    probe = DatabaseProbe(db_url)
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        api = Api(store=UploadStore(pool), probe=probe, metrics=metrics, checks=[],
                  version="9.9.9", started_at=datetime.now(UTC))  # fmt: skip
        app = build_app(api, metrics, GuardPolicy(admin_token=Secret(TOKEN)))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client
    await probe.aclose()


async def test_login_without_admin_token_and_loopback_session(db_url: str) -> None:
    """Without ADMIN_TOKEN, /session says no login is required and the loopback client is authenticated."""
    async with serving(db_url, GuardPolicy()) as (_, client):
        assert (await client.get("/session")).json() == {
            "required": False, "authenticated": True, "actor": "loopback", "csrf": None,
        }  # fmt: skip
        assert (await client.post("/login", json={"token": "x" * 20})).status_code == 409
