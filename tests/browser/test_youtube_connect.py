"""Connecting YouTube from the browser, and `auth youtube` while the daemon holds the database."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from tests.acceptance.test_upload_daemon import KEY, add_downloaded, states
from tests.browser.conftest import Console
from tests.daemon import Daemon, base_env
from tests.fakes.google_consent import ConsentScreen
from tests.fakes.server import LocalServer
from tests.fakes.youtube import FakeGoogle

pytestmark = pytest.mark.timeout(180)


@dataclass
class Google:
    """The fake Google with its consent page, on 127.0.0.1."""

    fake: FakeGoogle
    screen: ConsentScreen
    url: str

    def env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        """A daemon publishing to the fake, with no refresh token of its own."""
        settings = {
            "DATA_DIR": str(data_dir), "YT_CLIENT_ID": self.fake.client_id,
            "YT_CLIENT_SECRET": self.fake.client_secret, "ENCRYPTION_KEY": KEY,
            "YOUTUBE_API_URL": self.url, "GOOGLE_TOKEN_URL": f"{self.url}/token",
            "GOOGLE_AUTH_URL": f"{self.url}/auth", "UPLOAD_CHUNK_SIZE": "256K",
            "UPLOAD_RETRY_BASE": "50ms", "MAX_CONCURRENT_DOWNLOADS": "0",
        }  # fmt: skip
        return base_env(**{**settings, **extra})


@pytest.fixture
async def google() -> AsyncIterator[Google]:
    """The fake Google behind its consent screen."""
    fake = FakeGoogle()
    fake.revoke(fake.refresh_token)  # the daemon has no usable token to begin with
    screen = ConsentScreen(fake)
    async with LocalServer(screen) as server:
        yield Google(fake, screen, server.url)


async def test_connect_youtube_runs_the_consent_flow_and_a_waiting_vod_is_published(
    google: Google, db_url: str, open_dir: Path, console: Console
) -> None:
    """The dashboard's Connect YouTube goes through Google's consent (state, PKCE) and back; the token is stored sealed and the waiting VOD is published without a restart."""
    await add_downloaded(db_url, open_dir, "4242", b"\x00" * 300_000)
    daemon = await Daemon(google.env(open_dir, DATABASE_URL=db_url)).start()
    try:
        base = await daemon.started()
        await daemon.wait_for("uploads_waiting_for_auth", timeout=60)
        page = console.page
        await page.goto(f"{base}/")
        await page.get_by_role("link", name="Connect YouTube").click()
        await expect(page.locator("#connect-result")).to_contain_text("YouTube is connected")
        visit = google.screen.visits[-1]
        assert visit["redirect_uri"] == f"{base}/ui/youtube/callback"
        assert (visit["access_type"], visit["prompt"]) == ("offline", "consent")
        assert len(visit["state"]) >= 32
        await daemon.wait_for("upload_finished", timeout=60, vod_id="4242")
        assert (await states(db_url))["4242"] == "uploaded"
        assert len(google.fake.uploaded()) == 1
        # The fake exchanged the code only against a verifier matching this S256 challenge.
        assert visit["code_challenge_method"] == "S256"
        assert console.errors == []

        # The same state cannot be used twice, and a refusal at Google is said plainly.
        await page.goto(f"{base}/ui/youtube/callback?state={visit['state']}&code=x")
        await expect(page.locator("#connect-result")).to_contain_text("unknown or has expired")
        google.screen.deny_next = True
        await page.goto(f"{base}/")
        await page.get_by_role("link", name="Connect YouTube").click()
        await expect(page.locator("#connect-result")).to_contain_text("access_denied")
    finally:
        await daemon.stop()
    assert google.screen.grant_token not in daemon.output
    assert google.fake.client_secret not in daemon.output


async def test_auth_youtube_goes_through_the_daemon_holding_the_embedded_database(
    google: Google, open_dir: Path
) -> None:
    """With the embedded database held by the daemon, `auth youtube --token-stdin` hands the token to the daemon, which stores it; bad bodies get a 400 naming refresh_token."""
    env = google.env(open_dir, HTTP_ADDR="127.0.0.1:0")
    daemon = await Daemon(env).start()
    try:
        base = await daemon.started(timeout=90)
        google.fake.add_refresh_token("a-token-via-the-daemon")
        port = base.rsplit(":", 1)[1]
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vodarchiver", "auth", "youtube", "--token-stdin",
            env={**env, "HTTP_ADDR": f"127.0.0.1:{port}"},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(cli.communicate(b"a-token-via-the-daemon\n"), 60)
        assert cli.returncode == 0, err.decode()
        stored = await daemon.wait_for("youtube_token_stored", timeout=10, source="api")
        assert stored["generation"] >= 1
        async with httpx.AsyncClient() as client:
            bad = await client.post(f"{base}/admin/youtube/token", json={"token": "x"})
        assert (bad.status_code, bad.json()["parameter"]) == (400, "token")
        async with httpx.AsyncClient() as client:
            missing = await client.post(f"{base}/admin/youtube/token", json={})
        assert (missing.status_code, missing.json()["parameter"]) == (400, "refresh_token")
    finally:
        await daemon.stop()
    assert "a-token-via-the-daemon" not in daemon.output + out.decode() + err.decode()
