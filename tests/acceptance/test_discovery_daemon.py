"""The daemon as a process discovering VODs from the fake Twitch, as an operator sees it."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import pytest

from tests.daemon import Daemon, base_env, get
from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch


@pytest.fixture
async def twitch() -> AsyncIterator[tuple[FakeTwitch, LocalServer]]:
    """A fake Twitch on 127.0.0.1 with two channels, one of them live."""
    fake = FakeTwitch()
    fake.add_channel("alice", broadcaster_type="partner")
    fake.add_channel("bob")
    fake.add_vods("alice", 30)
    fake.add_vods("bob", 3)
    fake.go_live("bob")
    async with LocalServer(fake) as server:
        yield fake, server


def twitch_env(server: LocalServer, db_url: str, **extra: str) -> dict[str, str]:
    """Settings pointing the daemon at the fake."""
    settings = {
        "DATABASE_URL": db_url,
        "TWITCH_CHANNELS": "alice, Bob",
        "TWITCH_CLIENT_ID": "fake-client-id",
        "TWITCH_CLIENT_SECRET": "fake-client-secret",
        "TWITCH_API_URL": f"{server.url}/helix",
        "TWITCH_AUTH_URL": f"{server.url}/oauth2",
        "MAX_CONCURRENT_DOWNLOADS": "0",  # these VOD URLs point at twitch.tv: discovery alone here
    }
    return base_env(**{**settings, **extra})


async def test_daemon_discovers_and_lists_vods(
    twitch: tuple[FakeTwitch, LocalServer], db_url: str
) -> None:
    """The daemon reads both channels; /vods lists them in queue order and /vods/{id} shows one, the live one held back."""
    fake, server = twitch
    daemon = await Daemon(twitch_env(server, db_url)).start()
    try:
        base = await daemon.started()
        await daemon.wait_for("discovery_channel_done", channel="alice")
        await daemon.wait_for("discovery_channel_done", channel="bob")
        listing = (await get(f"{base}/vods?limit=100")).json()
        assert len(listing["items"]) == 34
        assert listing["next_offset"] is None
        live_id = fake.live_vod("bob")["id"]
        states = {v["id"]: v["state"] for v in listing["items"]}
        assert states.pop(live_id) == "live"
        assert set(states.values()) == {"queued"}
        # bob is not a partner: his VODs expire first and lead the queue
        assert [v["channel"] for v in listing["items"][:3]] == ["bob", "bob", "bob"]

        one = (await get(f"{base}/vods/{listing['items'][0]['id']}")).json()
        for key in (
            "id",
            "channel",
            "title",
            "state",
            "expires_at",
            "youtube_url",
            "created_at",
            "duration_s",
        ):
            assert key in one
        assert (await get(f"{base}/vods/999999999")).status_code == 404
        assert len((await get(f"{base}/vods?channel=bob&state=queued")).json()["items"]) == 3
        assert (await get(f"{base}/vods?state=nonsense")).status_code == 400

        ready = (await get(f"{base}/readyz")).json()
        assert ready["checks"]["twitch_credentials"]["ok"] is True
        metrics = (await get(f"{base}/metrics")).text
        assert 'vods_discovered_total{channel="alice"} 30.0' in metrics
        assert 'helix_requests_total{endpoint="videos",status="200"}' in metrics
        assert "vods_expiring_soon" in metrics
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(timeout=10) == 0
    finally:
        await daemon.stop()
    assert "fake-client-secret" not in daemon.output


async def test_a_refused_secret_is_reported_while_serving(
    twitch: tuple[FakeTwitch, LocalServer], db_url: str
) -> None:
    """With a secret Twitch refuses, the daemon keeps serving and /readyz says why."""
    _, server = twitch
    daemon = await Daemon(twitch_env(server, db_url, TWITCH_CLIENT_SECRET="wrong-secret")).start()
    try:
        base = await daemon.started()
        refused = await daemon.wait_for("twitch_credentials_refused")
        assert refused["reason"] == "invalid client secret"
        ready = await get(f"{base}/readyz")
        assert ready.status_code == 503
        assert "invalid client secret" in ready.json()["checks"]["twitch_credentials"]["detail"]
        assert (await get(f"{base}/healthz")).status_code == 200
    finally:
        await daemon.stop()
    assert "wrong-secret" not in daemon.output


async def test_without_credentials_discovery_is_off_and_says_why(db_url: str) -> None:
    """No Twitch credentials: the daemon runs, logs that discovery is off, and /readyz names the missing variables."""
    daemon = await Daemon(base_env(DATABASE_URL=db_url, TWITCH_CHANNELS="alice")).start()
    try:
        base = await daemon.started()
        off = await daemon.wait_for("discovery_disabled")
        assert "TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET are not set" in off["reason"]
        check = (await get(f"{base}/readyz")).json()["checks"]["twitch_credentials"]
        assert check["ok"] is False
        assert "discovery is off" in check["detail"]
        assert (await get(f"{base}/healthz")).status_code == 200
    finally:
        await daemon.stop()
