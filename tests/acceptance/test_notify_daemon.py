"""The daemon as a process: notifications survive a SIGKILL, a refused Twitch secret leaves the rest running, info logs hold no secret."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.acceptance.test_download_daemon import World, world  # noqa: F401 - the fixture
from tests.acceptance.test_upload_daemon import Google, google  # noqa: F401 - the fixture
from tests.daemon import Daemon, base_env, get
from tests.fakes.irc import FakeIrc
from tests.fakes.server import LocalServer
from tests.fakes.sink import FakeSink

WAIT_S = 60.0


@pytest.fixture
async def sink() -> AsyncIterator[tuple[FakeSink, str]]:
    """The notification sink and its Apprise URL (with a token-like path)."""
    fake = FakeSink()
    async with LocalServer(fake) as server:
        yield fake, f"json://127.0.0.1:{server.port}/hook-sekrit-path-42"


@pytest.fixture
async def irc() -> AsyncIterator[FakeIrc]:
    """A running fake IRC server."""
    server = await FakeIrc().start()
    yield server
    await server.stop()


async def sql(db_url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement in its own transaction."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cur = await conn.execute(statement, params)
        return await cur.fetchall() if cur.description else []


async def fail_vod(db_url: str, vod_id: str) -> None:
    """A VOD that fails for good, committed as the pipeline would."""
    await sql(db_url, "INSERT INTO vods (twitch_vod_id, channel, title, state)"
                      " VALUES (%s, 'alice', %s, 'downloading')", vod_id, f"Stream {vod_id}")  # fmt: skip
    await sql(db_url, "UPDATE vods SET state = 'failed_permanent', processing_error = 'gone bad'"
                      " WHERE twitch_vod_id = %s", vod_id)  # fmt: skip


async def test_a_sigkill_between_the_state_change_and_the_delivery_loses_and_repeats_nothing(
    sink: tuple[FakeSink, str], db_url: str, open_dir: Path
) -> None:
    """The first daemon is killed while the target refuses; events from before and during the outage each arrive once from the next daemon."""
    fake, url = sink
    env = base_env(DATABASE_URL=db_url, DATA_DIR=str(open_dir), MAX_CONCURRENT_DOWNLOADS="0",
                   NOTIFY_URLS=url, NOTIFY_RETRY_BASE="1s")  # fmt: skip
    fake.fail_always()
    first = await Daemon(env).start()
    try:
        await first.started()
        await fail_vod(db_url, "1")
        await asyncio.wait_for(fake.refusals(1).wait(), WAIT_S)
        first.send(signal.SIGKILL)
        await first.wait_exit()
    finally:
        await first.stop()
    await fail_vod(db_url, "2")  # while no daemon runs
    fake.fail_always(False)
    second = await Daemon(env).start()
    try:
        base = await second.started()
        await asyncio.wait_for(fake.when(2).wait(), WAIT_S)
        await second.wait_for("notification_sent", vod_id="2")
        await second.wait_for("notification_sent", vod_id="1")
        status = (await get(f"{base}/status")).json()["notifications"]
        assert status["sent"] == 2
        assert status["pending"] == 0
    finally:
        await second.stop()
    assert sorted(fake.titles()) == ["Failed for good: Stream 1", "Failed for good: Stream 2"]
    assert await sql(db_url, "SELECT state FROM notifications") == [("sent",), ("sent",)]
    assert "hook-sekrit-path-42" not in first.output + second.output


async def test_a_refused_twitch_secret_with_chat_on_leaves_the_daemon_up_and_working(  # noqa: PLR0917 - pytest fixtures
    world: World,  # noqa: F811
    google: Google,  # noqa: F811
    irc: FakeIrc,
    sink: tuple[FakeSink, str],
    db_url: str,
    open_dir: Path,
) -> None:
    """Chat and discovery cannot get an app token; the daemon stays up, a queued VOD is downloaded and published, /readyz and a notification name the problem."""
    fake, url = sink
    path = world.cdn.add("v1", world.vod)
    await sql(db_url, "INSERT INTO vods (twitch_vod_id, channel, title, state, url, duration_s,"
                      " date, expires_at) VALUES ('777', 'alice', 'Stream 777', 'queued', %s, %s,"
                      " %s, %s)", f"{world.cdn_url}{path}", round(world.vod.duration_s),
              datetime.now(UTC), datetime.now(UTC) + timedelta(days=7))  # fmt: skip
    env = {**world.env(db_url, open_dir), **google.env(db_url, open_dir),
           "MAX_CONCURRENT_DOWNLOADS": "1", "TWITCH_CLIENT_SECRET": "wrong-secret",
           "CHAT_AUTO_START": "1", "TWITCH_IRC_URL": irc.ws_url, "NOTIFY_URLS": url,
           "NOTIFY_CHECK_INTERVAL": "1s"}  # fmt: skip
    daemon = await Daemon(env).start()
    try:
        base = await daemon.started()
        crashed = await daemon.wait_for("stage_crashed", task="chat")
        assert "invalid client secret" in crashed["reason"]
        await daemon.wait_for("upload_finished", timeout=WAIT_S, vod_id="777")
        ready = await get(f"{base}/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert "chat" in checks["stages"]["detail"]
        assert "invalid client secret" in checks["stages"]["detail"]
        assert "invalid client secret" in checks["twitch_credentials"]["detail"]
        assert (await get(f"{base}/healthz")).status_code == 200
        await asyncio.wait_for(fake.when(1).wait(), WAIT_S)
        assert daemon.proc is not None
        assert daemon.proc.returncode is None  # still up
    finally:
        await daemon.stop()
    titles = fake.titles()
    assert "Twitch refused our credentials (app token)" in titles
    assert titles.count("Twitch refused our credentials (app token)") == 1
    states = dict(await sql(db_url, "SELECT twitch_vod_id, state FROM vods"))
    assert states["777"] == "uploaded"
    assert "wrong-secret" not in daemon.output


async def test_a_whole_pipeline_at_info_level_logs_no_url_token_or_upload_id(
    world: World,  # noqa: F811
    google: Google,  # noqa: F811
    sink: tuple[FakeSink, str],
    db_url: str,
    open_dir: Path,
) -> None:
    """Discovery, download, upload, retention and a notification at LOG_LEVEL=info: no provider URL, token, session or webhook in the log."""
    fake, url = sink
    vod_id = world.add_vod("alice", "v1")
    env = {**world.env(db_url, open_dir), **google.env(db_url, open_dir),
           "MAX_CONCURRENT_DOWNLOADS": "1", "LOG_LEVEL": "info", "NOTIFY_URLS": url,
           "NOTIFY_EVENTS": "all"}  # fmt: skip
    daemon = await Daemon(env).start()
    try:
        await daemon.started()
        await daemon.wait_for("upload_finished", timeout=WAIT_S, vod_id=vod_id)
        await daemon.wait_for("retention_removed", vod_id=vod_id)
        await asyncio.wait_for(fake.when(1).wait(), WAIT_S)
        await daemon.wait_for("notification_sent", vod_id=vod_id)
    finally:
        await daemon.stop()
    assert fake.titles() == [f"Published: {world.twitch.video(vod_id)['title']}"]
    assert not (open_dir / "alice" / vod_id).exists()
    log = daemon.output
    levels = {json.loads(line).get("level") for line in log.splitlines() if line.startswith("{")}
    assert "debug" not in levels
    # The VOD's own address (Helix `url`: twitch.tv/videos/<id> in production, the fake CDN's
    # playlist here) is logged on purpose when its download starts; API and upload URLs are not.
    forbidden = [
        world.twitch_url, google.url, "/helix/", "upload_id", "hook-sekrit-path-42",
        "fake-client-secret", google.fake.client_secret, google.fake.refresh_token,
        *google.fake.sessions, *google.fake._access, *world.twitch._tokens,
    ]  # fmt: skip
    leaked = [f for f in forbidden if f and f in log]
    assert leaked == [], [line for line in log.splitlines() if any(f in line for f in leaked)][:5]
