"""The whole app as the daemon builds it (API, admin routes, console, YouTube connect) answers odd
input with a 4xx, never a 500; the login form works without its script; sessions survive a
shadowing cookie and are Secure behind a TLS proxy."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import psycopg_pool
import pytest

from vodarchiver.config import load_settings
from vodarchiver.console.wiring import build_console
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.uploads import UploadStore
from vodarchiver.health import DatabaseCheck
from vodarchiver.metrics import Metrics
from vodarchiver.values import Secret
from vodarchiver.web import Api, build_app
from vodarchiver.webguard import GuardPolicy

TOKEN = "console-input-token-0123456789"


async def _client(
    db_url: str, data_dir: Path, policy: GuardPolicy
) -> AsyncIterator[httpx.AsyncClient]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, state) VALUES ('42', 'c', 'queued')"
        )
    settings = load_settings({"DATABASE_URL": db_url, "DATA_DIR": str(data_dir),
                              "ENV_FILE": os.devnull, "ALLOW_PLAINTEXT_TOKENS": "1",
                              "YT_CLIENT_ID": "cid", "YT_CLIENT_SECRET": "csecret"})  # fmt: skip
    metrics = Metrics("9.9.9")
    probe = DatabaseProbe(db_url)
    async with (
        psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool,
        httpx.AsyncClient() as http,
    ):
        api = Api(store=UploadStore(pool), probe=probe, metrics=metrics,
                  checks=[DatabaseCheck(probe)], version="9.9.9", started_at=datetime.now(UTC),
                  chat=ChatStore(pool))  # fmt: skip
        endpoints, routes = build_console(settings, api, pool, None, http)
        app = build_app(api, metrics, policy, extra=endpoints, extra_routes=routes)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield c
    await probe.aclose()


@pytest.fixture
async def client(db_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Loopback, no ADMIN_TOKEN."""
    async for c in _client(db_url, tmp_path, GuardPolicy()):
        yield c


@pytest.fixture
async def guarded(db_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """With ADMIN_TOKEN."""
    async for c in _client(db_url, tmp_path, GuardPolicy(admin_token=Secret(TOKEN))):
        yield c


CONSOLE_GETS = [
    "/ui/vods/%00", "/ui/vods/%00/live", "/ui/vods/%00/chat", "/ui/vods/%00/chat.json",
    "/ui/vods/%00/chat/export?format=json", "/ui/vods/4%0a2", "/ui/vods/" + "9" * 40,
    "/ui/vods?channel=a%00b", "/ui/vods?q=%00", "/ui/vods.json?q=%1b", "/ui/vods.json?after=x",
    "/ui/vods.json?after=2020-01-01|99999999999999999999", "/ui/vods.json?after=2020-01-01|-1",
    "/ui/vods/42/chat.json?q=%00", "/ui/vods/42/chat.json?user=%00",
    "/ui/vods/42/chat.json?after=99999999999999999999:x", "/ui/vods/42/chat?t=junk",
]  # fmt: skip


@pytest.mark.parametrize("url", CONSOLE_GETS)
async def test_console_pages_answer_bad_input_with_400(client: httpx.AsyncClient, url: str) -> None:
    """A NUL, a control character, a malformed id or an out-of-range cursor is a 400, not a 500."""
    answer = await client.get(url)
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])


@pytest.mark.parametrize(
    ("path", "body", "parameter"),
    [
        ("/login", '{"\\ud800": 1}', "\\ud800"),
        ("/logout", '{"\\ud800": 1}', "\\ud800"),
        ("/admin/uploads/pause", '{"reason": "\\ud800"}', "reason"),
        ("/admin/uploads/pause", '{"reason": "\\u202eevil"}', "reason"),
        ("/admin/uploads/pause", '{"reason": "a\\u2028b"}', "reason"),
        ("/admin/youtube/token", "[" * 100_000 + "]" * 100_000, "body"),
        ("/admin/youtube/token", "{}", "refresh_token"),
        ("/admin/youtube/token", '{"refresh_token": "   "}', "refresh_token"),
        ("/admin/youtube/token", '{"refresh_token": "' + "a" * 3000 + '"}', "refresh_token"),
    ],
)
async def test_odd_json_bodies_are_4xx_naming_the_parameter(
    client: httpx.AsyncClient, path: str, body: str, parameter: str
) -> None:
    """Lone surrogates, bidi and separator characters in shown text, nesting and sizes: 4xx."""
    answer = await client.post(path, content=body.encode(),
                               headers={"Content-Type": "application/json"})  # fmt: skip
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert answer.json()["parameter"] == parameter


async def test_the_youtube_token_route_still_stores_a_token(client: httpx.AsyncClient) -> None:
    """The declared route's handler gets the validated field (stored as generation 1)."""
    answer = await client.post("/admin/youtube/token", json={"refresh_token": " 1//tok "})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stored": True, "generation": 1}


async def test_unknown_routes_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    """An unknown action is a JSON 404 naming the path; a GET on a POST route a JSON 405."""
    missing = await client.post("/admin/vods/42/frob")
    assert (missing.status_code, missing.json()["parameter"]) == (404, "path")
    wrong = await client.get("/admin/vods/42/cancel")
    assert (wrong.status_code, wrong.json()["parameter"]) == (405, "method")
    assert wrong.headers["allow"] == "POST"


async def test_the_login_form_works_without_its_script(guarded: httpx.AsyncClient) -> None:
    """The form's own POST (urlencoded) logs in and goes back to the console: 303 to /."""
    wrong = await guarded.post("/login", data={"token": "nope"})
    assert wrong.status_code == 401
    answer = await guarded.post("/login", data={"token": TOKEN})
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    cookie = answer.headers["set-cookie"]
    assert {"HttpOnly", "SameSite=Strict"} <= {part.strip() for part in cookie.split(";")}
    assert "Secure" not in cookie
    assert TOKEN not in cookie


async def test_the_session_cookie_is_secure_behind_a_tls_proxy(guarded: httpx.AsyncClient) -> None:
    """A proxy saying the browser came over https makes the cookie Secure (either header)."""
    for header in ({"X-Forwarded-Proto": "https"}, {"Forwarded": "for=1.2.3.4;proto=https"}):
        answer = await guarded.post("/login", json={"token": TOKEN}, headers=header)
        assert answer.status_code == 200
        assert "; Secure" in answer.headers["set-cookie"]


async def test_a_shadowing_cookie_does_not_lock_the_operator_out(
    guarded: httpx.AsyncClient,
) -> None:
    """A junk `vodarchiver_session` before the real one: the real one still counts."""
    login = await guarded.post("/login", json={"token": TOKEN})
    value = login.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    csrf = login.json()["csrf"]
    headers = {"Cookie": f"vodarchiver_session=junk; vodarchiver_session={value}"}
    session = (await guarded.get("/session", headers=headers)).json()
    assert (session["authenticated"], session["csrf"]) == (True, csrf)
    acted = await guarded.post("/admin/vods/42/priority", json={"priority": 3},
                               headers={**headers, "X-CSRF-Token": csrf})  # fmt: skip
    assert acted.status_code == 200, acted.text
