"""The web console in a real browser (Debian's chromium) against the daemon and the fakes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.async_api import Browser, Page, expect
from starlette.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

from tests.browser.conftest import Console
from tests.daemon import Daemon, base_env, get
from tests.fakes.cdn import FakeCdn
from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch
from tests.media import HlsVod, make_hls

pytestmark = pytest.mark.timeout(180)


@dataclass
class World:
    """Fake Twitch whose VOD URLs point at a throttled fake CDN."""

    twitch: FakeTwitch
    twitch_url: str
    cdn: FakeCdn
    cdn_url: str
    vod: HlsVod

    def add_vod(self, name: str) -> str:
        """A VOD of channel alice served by the CDN; returns its Twitch id."""
        video = self.twitch.add_vod("alice", duration_s=round(self.vod.duration_s))
        video["url"] = f"{self.cdn_url}{self.cdn.add(name, self.vod)}"
        return str(video["id"])

    def env(self, db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
        """A daemon archiving alice from the fakes, one download at a time."""
        settings = {
            "DATABASE_URL": db_url, "DATA_DIR": str(data_dir), "TWITCH_CHANNELS": "alice",
            "TWITCH_CLIENT_ID": "fake-client-id", "TWITCH_CLIENT_SECRET": "fake-client-secret",
            "TWITCH_API_URL": f"{self.twitch_url}/helix", "TWITCH_AUTH_URL": f"{self.twitch_url}/oauth2",
            "DOWNLOAD_CONCURRENT_FRAGMENTS": "1", "MAX_CONCURRENT_DOWNLOADS": "1",
            "DISK_MIN_FREE_GB": "0", "DOWNLOAD_SIZE_ESTIMATE_MBPS": "1", "AT_RISK_WINDOW": "90d",
        }  # fmt: skip
        return base_env(**{**settings, **extra})


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """Fake Twitch and a CDN throttled to 150 kB/s, so a download takes a while."""
    twitch, cdn = FakeTwitch(), FakeCdn(throttle_bps=150_000)
    twitch.add_channel("alice")
    async with LocalServer(twitch) as tw, LocalServer(cdn) as cd:
        yield World(twitch, tw.url, cdn, cd.url, make_hls(240))


async def vod_state(base: str, vod_id: str) -> str:
    """The VOD's state from the JSON API."""
    body: dict[str, Any] = (await get(f"{base}/vods/{vod_id}")).json()
    return str(body["state"])


async def test_dashboard_shows_a_download_moving(
    world: World, db_url: str, open_dir: Path, console: Console
) -> None:
    """The dashboard lists the running download with a progress bar whose bytes change without a reload."""
    vod_id = world.add_vod("v1")
    daemon = await Daemon(world.env(db_url, open_dir)).start()
    try:
        base = await daemon.started()
        await daemon.wait_for("download_started", timeout=60, vod_id=vod_id)
        page = console.page
        await page.goto(f"{base}/")
        transfer = page.locator(f'.transfer[data-vod="{vod_id}"][data-kind="download"]')
        await expect(transfer).to_be_visible(timeout=30_000)
        bytes_text = transfer.locator(".bytes")
        await expect(bytes_text).not_to_have_text(re.compile(r"^\?"), timeout=30_000)
        first = await bytes_text.inner_text()
        # The page polls its live fragment; the figure must change with no reload.
        await expect(bytes_text).not_to_have_text(first, timeout=15_000)
        assert await transfer.locator("progress").get_attribute("max") == "100"
        await expect(transfer.locator(".speed")).to_contain_text("/s")
        await expect(page.locator(f'.at-risk li[data-vod="{vod_id}"] .countdown')).to_contain_text(
            "left"
        )
        assert page.url == f"{base}/"  # still the same page: nothing reloaded it
        assert console.errors == []
    finally:
        await daemon.stop()


async def _foreign_page(html: str) -> LocalServer:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await HTMLResponse(html)(scope, receive, send)

    return await LocalServer(app).start()


async def test_cancel_from_the_vod_page_and_not_from_another_origin_then_restore(
    world: World, db_url: str, open_dir: Path, console: Console
) -> None:
    """A page on another origin cannot cancel the download; the VOD page's Cancel (confirmed) does, Restore brings it back, and the timeline shows both from the audit table."""
    vod_id = world.add_vod("v1")
    daemon = await Daemon(world.env(db_url, open_dir)).start()
    foreign = await _foreign_page("<!doctype html><title>elsewhere</title><p>elsewhere</p>")
    try:
        base = await daemon.started()
        await daemon.wait_for("download_started", timeout=60, vod_id=vod_id)
        page = console.page
        await page.goto(foreign.url + "/")
        outcome = await page.evaluate(
            """async (url) => {
                try {
                    const r = await fetch(url, {method: "POST", body: "{}",
                        headers: {"Content-Type": "application/json"}});
                    return "status " + r.status;
                } catch (e) { return "blocked"; }
            }""",
            f"{base}/admin/vods/{vod_id}/cancel",
        )
        assert outcome == "blocked"
        assert await vod_state(base, vod_id) == "downloading"

        await page.goto(f"{base}/ui/vods/{vod_id}")
        await expect(page.locator("#timeline")).to_have_text("No operator action recorded yet.")
        dialogs: list[str] = []

        async def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            await dialog.accept()

        page.on("dialog", accept)
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#vod-state")).to_have_text("canceled", timeout=15_000)
        await expect(page.locator("#action-result")).to_contain_text("downloading → canceled")
        assert dialogs == [f"Cancel VOD {vod_id}?"]
        assert await vod_state(base, vod_id) == "canceled"
        await daemon.wait_for("download_canceled", timeout=30, vod_id=vod_id)

        # Restore is not destructive: no confirmation; the download starts over.
        await page.get_by_role("button", name="Restore").click()
        await expect(page.locator("#action-result")).to_contain_text("canceled → queued")
        assert dialogs == [f"Cancel VOD {vod_id}?"]
        await expect(page.locator("#vod-state")).to_have_text("downloading", timeout=60_000)
        entries = page.locator("#timeline li")
        await expect(entries).to_have_count(2)
        await expect(entries.nth(0)).to_contain_text("cancel: downloading → canceled")
        await expect(entries.nth(1)).to_contain_text("restore: canceled → queued")
        await expect(entries.nth(0).locator("time")).to_have_attribute("title", re.compile("UTC$"))
        assert console.errors == []
    finally:
        await foreign.stop()
        await daemon.stop()


async def test_a_refused_action_shows_the_lifecycles_reason(
    db_url: str, open_dir: Path, console: Console
) -> None:
    """Restore of a gone VOD, with no Helix to ask whether Twitch still lists it, is refused with the lifecycle's reason on the page; the state stays."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, title, state) "
            "VALUES ('900', 'alice', 'vanished', 'gone')"
        )
    daemon = await Daemon(base_env(DATABASE_URL=db_url, DATA_DIR=str(open_dir))).start()
    try:
        base = await daemon.started()
        page = console.page
        await page.goto(f"{base}/ui/vods/900")
        await expect(page.locator(".actions")).not_to_contain_text("Cancel")
        await page.get_by_role("button", name="Restore").click()
        result = page.locator("#action-result")
        await expect(result).to_contain_text("restore refused (HTTP 409)")
        await expect(result).to_contain_text(
            "a gone VOD is restored only if Twitch still lists it; Helix cannot be asked"
        )
        await expect(result).to_contain_text("allowed now: priority")
        assert await vod_state(base, "900") == "gone"
        assert console.errors == []
    finally:
        await daemon.stop()


async def test_with_admin_token_actions_need_a_login_and_a_form_from_another_site_does_nothing(
    db_url: str, open_dir: Path, console: Console
) -> None:
    """With ADMIN_TOKEN: an action before logging in is refused (401); the login form sets an HttpOnly SameSite=Strict session; the action then works; another site's auto-submitted form changes nothing; after logging out the action is refused again."""
    token = "console-admin-token-7f3a"
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, title, state, priority) "
            "VALUES ('910', 'alice', 'waiting', 'failed_permanent', 0)"
        )
    env = base_env(DATABASE_URL=db_url, DATA_DIR=str(open_dir), ADMIN_TOKEN=token)
    daemon = await Daemon(env).start()
    foreign: LocalServer | None = None
    try:
        base = await daemon.started()
        page = console.page
        await page.goto(f"{base}/ui/vods/910")
        await expect(page.locator("#session")).to_contain_text("Log in")
        await page.get_by_role("button", name="Priority").click()
        await expect(page.locator("#action-result")).to_contain_text("priority refused (HTTP 401)")

        await page.goto(f"{base}/ui/login")
        await page.get_by_label("Admin token").fill("not-the-token")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#login-result")).to_have_text("That token is not right.")
        await page.get_by_label("Admin token").fill(token)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#session")).to_contain_text("Log out")
        cookies = {c["name"]: c for c in await page.context.cookies()}
        session = cookies["vodarchiver_session"]
        assert (session["httpOnly"], session["sameSite"]) == (True, "Strict")
        assert token not in session["value"]

        await page.goto(f"{base}/ui/vods/910")
        await page.get_by_role("button", name="Priority").click()
        await expect(page.locator("#action-result")).to_contain_text(
            "priority: failed_permanent → failed_permanent"
        )
        await expect(page.locator("#timeline li")).to_have_count(1)
        await expect(page.locator("#timeline li")).to_contain_text("(session, priority 0)")

        # Another site's page posts a form at the daemon (a "simple" request: no CORS preflight).
        form = (
            f'<!doctype html><form id="f" method="post" action="{base}/admin/vods/910/skip">'
            '<input name="x" value="1"></form><script>document.getElementById("f").submit()'
            "</script>"
        )
        foreign = await _foreign_page(form)
        answer = await page.goto(foreign.url + "/")
        assert answer is not None
        await page.wait_for_url(f"{base}/admin/vods/910/skip")
        await expect(page.locator("body")).to_contain_text("from another")
        assert await vod_state(base, "910") == "failed_permanent"

        await page.goto(f"{base}/")
        await page.get_by_role("button", name="Log out").click()
        await expect(page.locator("#session")).to_contain_text("Log in")
        await page.goto(f"{base}/ui/vods/910")
        await page.get_by_role("button", name="Restore").click()
        await expect(page.locator("#action-result")).to_contain_text("restore refused (HTTP 401)")
        assert await vod_state(base, "910") == "failed_permanent"
    finally:
        if foreign is not None:
            await foreign.stop()
        await daemon.stop()


CHAT_MESSAGES = 100_000


async def _vod_with_chat(db_url: str) -> None:
    """VOD 777 with 100,000 messages, one a second, one of them unique text, some deleted."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, title, state, duration_s) "
            "VALUES ('777', 'alice', 'long stream', 'uploaded', 100000)"
        )
        await conn.execute(
            """INSERT INTO chat_messages (msg_id, vod_id, channel, username, display_name, message,
                                          sent_at, offset_ms, deleted, raw_tags)
               SELECT 'm' || lpad(g::text, 7, '0'), (SELECT id FROM vods WHERE twitch_vod_id = '777'),
                      'alice', 'user' || (g %% 500), 'User' || (g %% 500),
                      CASE WHEN g = 73512 THEN 'the needle is here Kappa' ELSE 'message ' || g END,
                      now(), g * 1000, g %% 1000 = 0,
                      CASE WHEN g %% 10 = 0 THEN 'badges=subscriber/12,premium/1' ELSE '' END
               FROM generate_series(1, %(n)s) g""",
            {"n": CHAT_MESSAGES},
        )


async def follow_search(page: Page) -> None:
    """Click "Search on" while a search stopped at its time budget without a match."""
    for _ in range(20):
        await page.wait_for_load_state()
        if await page.locator("li.msg").count() or not await page.locator("#searched-to").count():
            return
        await page.get_by_role("link", name="Search on").click()
    raise AssertionError("the search never finished")


async def test_chat_viewer_pages_jumps_and_finds(
    db_url: str, open_dir: Path, console: Console
) -> None:
    """The chat viewer pages through 100,000 messages by keyset, jumps to a time and finds a message by text and by user."""
    await _vod_with_chat(db_url)
    daemon = await Daemon(base_env(DATABASE_URL=db_url, DATA_DIR=str(open_dir))).start()
    try:
        base = await daemon.started()
        page = console.page
        await page.goto(f"{base}/ui/vods/777/chat")
        messages = page.locator("ol.chat li.msg")
        await expect(messages).to_have_count(100)
        await expect(messages.first.locator(".offset")).to_have_text("0:00:01")
        for expected_first in ("0:01:41", "0:03:21", "0:05:01"):
            await page.get_by_role("link", name="Next page").click()
            await expect(messages.first.locator(".offset")).to_have_text(expected_first)
        await expect(messages).to_have_count(100)
        badge = page.locator('li.msg[data-id="m0000310"] .badge')
        await expect(badge.first).to_have_text("subscriber/12")

        await page.get_by_label("From time").fill("20:16:40")
        await page.get_by_role("button", name="Find").click()
        await expect(messages.first.locator(".offset")).to_have_text("20:16:40")
        deleted = page.locator('li.msg[data-id="m0073000"]')  # g % 1000 == 0: deleted
        await expect(deleted).to_have_class(re.compile(r"\bdeleted\b"))
        await expect(deleted).to_contain_text("(deleted)")

        await page.get_by_label("From time").fill("")
        await page.get_by_label("Text").fill("needle")
        await page.get_by_role("button", name="Find").click()
        await follow_search(page)
        await expect(messages).to_have_count(1)
        await expect(messages.first).to_contain_text("the needle is here Kappa")
        await expect(messages.first.locator(".offset")).to_have_text("20:25:12")

        await page.get_by_label("Text").fill("")
        await page.get_by_label("User").fill("User7")
        await page.get_by_role("button", name="Find").click()
        await expect(messages.first.locator(".user")).to_have_text("User7")
        await expect(messages.first.locator(".offset")).to_have_text("0:00:07")
        assert console.errors == []

        bad_time = await get(f"{base}/ui/vods/777/chat.json?t=soon")
        assert (bad_time.status_code, bad_time.json()["error"][:2]) == (400, "t:")
        bad_format = await get(f"{base}/ui/vods/777/chat/export?format=pdf")
        assert (bad_format.status_code, bad_format.json()["error"][:7]) == (400, "format:")
        assert (await get(f"{base}/ui/vods/404404/chat")).status_code == 404
        export = await get(f"{base}/ui/vods/777/chat/export?format=srt", timeout=60)
        assert export.status_code == 200
        assert "the needle is here Kappa" in export.text
        assert export.text.count(" --> ") == CHAT_MESSAGES - CHAT_MESSAGES // 1000
    finally:
        await daemon.stop()


async def test_vod_list_filters_sorts_and_pages_by_keyset(
    db_url: str, open_dir: Path, console: Console
) -> None:
    """The VOD list filters by state and title, sorts by expiry or date, and its Next page continues where the last one ended."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            """INSERT INTO vods (twitch_vod_id, channel, title, state, date, expires_at)
               SELECT (1000 + g)::text, CASE WHEN g % 2 = 0 THEN 'alice' ELSE 'bob' END,
                      'Stream ' || g, CASE WHEN g % 3 = 0 THEN 'uploaded' ELSE 'queued' END,
                      now() - g * interval '1 hour', now() + g * interval '1 hour'
               FROM generate_series(1, 120) g"""
        )
    env = base_env(DATABASE_URL=db_url, DATA_DIR=str(open_dir), TWITCH_CHANNELS="alice,bob")
    daemon = await Daemon(env).start()
    try:
        base = await daemon.started()
        page = console.page
        await page.goto(f"{base}/ui/vods")
        rows = page.locator("table.vods tbody tr[data-vod]")
        await expect(rows).to_have_count(50)
        await expect(rows.first).to_have_attribute("data-vod", "1001")  # nearest expiry first
        await page.get_by_role("link", name="Next page").click()
        await expect(rows.first).to_have_attribute("data-vod", "1051")
        await page.get_by_role("link", name="Next page").click()
        await expect(rows).to_have_count(20)
        await expect(page.get_by_role("link", name="Next page")).to_have_count(0)

        await page.get_by_label("State").select_option("uploaded")
        await page.get_by_label("Channel").select_option("alice")
        await page.get_by_label("Sort").select_option("date")
        await page.get_by_role("button", name="Show").click()
        await expect(rows).to_have_count(20)  # g % 6 == 0 within 1..120
        await expect(rows.first).to_have_attribute("data-vod", "1006")  # newest first
        await page.get_by_label("Title contains").fill("Stream 12")
        await page.get_by_role("button", name="Show").click()
        await expect(rows).to_have_count(2)  # 12 and 120
        bad = await get(f"{base}/ui/vods.json?state=nonsense")
        assert bad.status_code == 400
        assert "state" in bad.json()["error"]
        await page.goto(f"{base}/ui/vods?after=garbage")
        await expect(page.get_by_role("alert")).to_contain_text("after:")
        assert (await get(f"{base}/ui/vods/none-such")).status_code == 404
        page_headers = (await get(f"{base}/ui/vods")).headers
        assert page_headers["content-security-policy"].startswith("default-src 'self'")
    finally:
        await daemon.stop()


async def test_pages_fit_a_phone_and_work_from_the_keyboard(
    db_url: str, open_dir: Path, browser: Browser
) -> None:
    """At 375 px no page scrolls sideways; Tab reaches the skip link first, and the VOD filter form works with the keyboard alone."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            """INSERT INTO vods (twitch_vod_id, channel, title, state, date, expires_at,
                                 processing_error)
               SELECT (500 + g)::text, 'alice', 'A rather long stream title number ' || g,
                      'failed_retryable', now() - g * interval '1 hour',
                      now() + g * interval '1 hour', repeat('an-unbroken-error-text-', 20)
               FROM generate_series(1, 30) g"""
        )
    daemon = await Daemon(base_env(DATABASE_URL=db_url, DATA_DIR=str(open_dir))).start()
    context = await browser.new_context(viewport={"width": 375, "height": 740})
    try:
        base = await daemon.started()
        page = await context.new_page()
        for path in ("/", "/ui/vods", "/ui/vods/501", "/ui/vods/501/chat", "/ui/channels"):
            await page.goto(base + path)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path} is {width} px wide"
        await page.goto(f"{base}/ui/vods")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        await page.get_by_label("Title contains").focus()
        await page.keyboard.type("number 17")
        await page.keyboard.press("Enter")
        await expect(page.locator("table.vods tbody tr[data-vod]")).to_have_count(1)
        await expect(page.locator("table.vods tbody tr[data-vod]")).to_have_attribute(
            "data-vod", "517"
        )
    finally:
        await context.close()
        await daemon.stop()
