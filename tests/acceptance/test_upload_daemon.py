"""The daemon as a process publishing to the fake YouTube: SIGKILLs, revoked tokens, no credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from starlette.types import Message, Receive, Scope, Send

from tests.acceptance.test_download_daemon import World
from tests.daemon import Daemon, base_env, get, run_until_exit
from tests.fakes.cdn import FakeCdn
from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch
from tests.fakes.youtube import FakeGoogle
from tests.media import make_hls
from vodarchiver.youtube.crypto import TokenCipher

KEY = base64.b64encode(os.urandom(32)).decode()
CHUNK = 256 * 1024


@dataclass
class ByteTrigger:
    """ASGI middleware in front of the fake: events that fire once N upload bytes have arrived."""

    app: FakeGoogle
    seen: int = 0
    waiters: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "PUT":
            await self.app(scope, receive, send)
            return

        async def counting() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.seen += len(message.get("body", b""))
                for threshold, event in self.waiters:
                    if self.seen >= threshold:
                        event.set()
            return message

        await self.app(scope, counting, send)

    def when(self, more_bytes: int) -> asyncio.Event:
        """An event set once `more_bytes` more bytes of chunks have arrived."""
        event = asyncio.Event()
        self.waiters.append((self.seen + more_bytes, event))
        return event


@dataclass
class Google:
    """The fake Google on 127.0.0.1, behind a byte trigger."""

    fake: FakeGoogle
    trigger: ByteTrigger
    url: str

    def env(self, db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
        """A daemon publishing to this fake (discovery and downloads off unless `extra` says)."""
        settings = {
            "DATABASE_URL": db_url, "DATA_DIR": str(data_dir),
            "YT_CLIENT_ID": self.fake.client_id, "YT_CLIENT_SECRET": self.fake.client_secret,
            "YT_REFRESH_TOKEN": self.fake.refresh_token, "ENCRYPTION_KEY": KEY,
            "YOUTUBE_API_URL": self.url, "GOOGLE_TOKEN_URL": f"{self.url}/token",
            "UPLOAD_CHUNK_SIZE": "256K", "UPLOAD_RETRY_BASE": "50ms",
            "YOUTUBE_QUOTA_BUDGETS": "default=10000,uploads=1000",
            "YOUTUBE_QUOTA_COSTS": "videos.insert=uploads:1", "MAX_CONCURRENT_DOWNLOADS": "0",
        }  # fmt: skip
        return base_env(**{**settings, **extra})


@pytest.fixture
async def google() -> AsyncIterator[Google]:
    """The fake Google, started."""
    fake = FakeGoogle()
    trigger = ByteTrigger(fake)
    async with LocalServer(trigger) as server:
        yield Google(fake, trigger, server.url)


async def add_downloaded(db_url: str, data_dir: Path, vod_id: str, data: bytes) -> Path:
    """A VOD already downloaded: its row in `downloaded` and its file under DATA_DIR."""
    directory = data_dir / "alice" / vod_id
    directory.mkdir(parents=True)
    path = directory / f"{vod_id}.mp4"
    path.write_bytes(data)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, title, state, download_state, date,"
            " duration_s, url, file_path, file_size) VALUES (%s, 'alice', %s, 'downloaded',"
            " 'downloaded', %s, 60, %s, %s, %s)",
            (vod_id, f"Stream {vod_id}", datetime.now(UTC) - timedelta(days=1),
             f"https://www.twitch.tv/videos/{vod_id}", str(path), len(data)),
        )  # fmt: skip
    return path


async def states(db_url: str) -> dict[str, str]:
    """Every VOD's state."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT twitch_vod_id, state FROM vods")
        return {str(i): str(s) for i, s in await cur.fetchall()}


def marker_of(video: Any) -> str:
    """The marker line that ends a video's description."""
    return str(video.snippet["description"]).rsplit("\n", 1)[-1]


async def test_sigkill_at_random_moments_ten_times_never_duplicates_or_restarts(
    google: Google, db_url: str, open_dir: Path
) -> None:
    """Ten SIGKILLs mid-upload: every VOD once, byte-identical, and far fewer bytes than restarts."""
    rng = random.Random(20261123)  # noqa: S311 - reproducible kill moments, not cryptography
    files = {}
    for n in range(6):
        vod_id = str(5000 + n)
        files[vod_id] = os.urandom(12 * CHUNK + rng.randrange(1, CHUNK))
        await add_downloaded(db_url, open_dir, vod_id, files[vod_id])
    total = sum(len(d) for d in files.values())
    env = google.env(db_url, open_dir, DELETE_AFTER_UPLOAD="0")
    kills = 0
    while kills < 10:
        daemon = await Daemon(env).start()
        try:
            await daemon.started()
            moment = google.trigger.when(rng.randrange(CHUNK // 2, 4 * CHUNK))
            finished = asyncio.create_task(daemon.wait_exit(timeout=60))
            await asyncio.wait({asyncio.create_task(moment.wait()), finished},
                               timeout=60, return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            assert moment.is_set(), "the daemon stopped uploading before all VODs were done"
            daemon.send(signal.SIGKILL)
            await finished
            kills += 1
        finally:
            await daemon.stop()
        if all(s == "uploaded" for s in (await states(db_url)).values()):
            break
    final = await Daemon(env).start()
    try:
        await final.started()
        for vod_id, state in (await states(db_url)).items():
            if state != "uploaded":
                await final.wait_for("upload_finished", timeout=60, vod_id=vod_id)
    finally:
        await final.stop()
    videos = google.fake.uploaded()
    markers = [marker_of(v) for v in videos]
    assert len(markers) == len(set(markers)) == len(files), "a VOD was published twice"
    by_marker = {marker_of(v): v for v in videos}
    for vod_id, data in files.items():
        video = by_marker[f"[vodarchiver vod={vod_id} part=1/1]"]
        assert video.sha256 == hashlib.sha256(data).hexdigest()
    assert set((await states(db_url)).values()) == {"uploaded"}
    assert kills >= 5, "too few kills landed during uploads to mean anything"
    # A restart from zero would resend each interrupted VOD's bytes; a resume loses at most the
    # chunk in flight (and what the fake had not yet committed of it) at each kill.
    assert google.fake.bytes_received <= total + kills * 2 * CHUNK


async def test_without_credentials_downloaded_vods_wait_and_are_published_later(
    google: Google, db_url: str, open_dir: Path
) -> None:
    """No YouTube credentials: `downloaded` stays, /readyz says why; with them, published."""
    await add_downloaded(db_url, open_dir, "6001", os.urandom(300_000))
    no_creds = google.env(db_url, open_dir, YT_CLIENT_ID="", YT_CLIENT_SECRET="",
                          YT_REFRESH_TOKEN="")  # fmt: skip
    daemon = await Daemon(no_creds).start()
    try:
        base = await daemon.started()
        await daemon.wait_for("uploads_disabled")
        ready = (await get(f"{base}/readyz")).json()
        assert "uploads are off" in ready["checks"]["youtube_upload"]["detail"]
        status = (await get(f"{base}/status")).json()
        assert status["uploads"] == {"enabled": False}
        assert (await states(db_url))["6001"] == "downloaded"
    finally:
        await daemon.stop()
    assert google.fake.requests == []
    daemon = await Daemon(google.env(db_url, open_dir)).start()
    try:
        base = await daemon.started()
        await daemon.wait_for("upload_finished", timeout=30, vod_id="6001")
        line = await daemon.wait_for("vod_processed", vod_id="6001")  # the runbook's line
        assert (line["component"], line["msg"]) == ("vod_process", "vod processed")
        assert line["upl_ms"] > 0
        assert line["total_ms"] > 0
        assert line["queue_depth"] == 0
        body = (await get(f"{base}/vods/6001")).json()
        assert body["state"] == "uploaded"
        assert body["processed"] == 1
        assert body["parts"][0]["video_id"] == google.fake.uploaded()[0].id
        assert "session_uri" not in body["parts"][0]
        metrics = (await get(f"{base}/metrics")).text
        assert 'youtube_quota_used{bucket="uploads"} 1.0' in metrics  # one videos.insert
        assert 'youtube_quota_remaining{bucket="uploads"} 999.0' in metrics
        assert 'youtube_quota_remaining{bucket="default"}' in metrics
        assert "vod_uploads_succeeded_total 1.0" in metrics
        assert "vod_circuit_open 0.0" in metrics
        status = (await get(f"{base}/status")).json()
        assert status["processed"] == 1
        assert status["avg_upload_ms"] > 0
        assert status["uploads"]["quota"]["uploads"] == {"used": 1, "remaining": 999,
                                                         "budget": 1000}  # fmt: skip
    finally:
        await daemon.stop()


async def test_invalid_grant_pauses_uploads_while_downloads_go_on_until_a_new_token(
    google: Google, db_url: str, open_dir: Path
) -> None:
    """Revoked: waiting_for_auth, /readyz says so, downloads continue; `auth youtube` resumes."""
    twitch, cdn = FakeTwitch(), FakeCdn()
    twitch.add_channel("alice")
    google.fake.revoke(google.fake.refresh_token)
    async with LocalServer(twitch) as tw, LocalServer(cdn) as cd:
        world = World(twitch, tw.url, cdn, cd.url, make_hls(60))
        first = world.add_vod("alice", "v1")
        env = {**world.env(db_url, open_dir), **google.env(db_url, open_dir),
               "MAX_CONCURRENT_DOWNLOADS": "1", "DISCOVERY_INTERVAL": "1s"}  # fmt: skip
        daemon = await Daemon(env).start()
        try:
            base = await daemon.started()
            await daemon.wait_for("uploads_waiting_for_auth", timeout=60)
            assert (await states(db_url))[first] == "waiting_for_auth"
            ready = await get(f"{base}/readyz")
            assert ready.status_code == 503
            assert "invalid_grant" in ready.json()["checks"]["youtube_auth"]["detail"]
            second = world.add_vod("alice", "v2")  # downloads go on meanwhile
            await daemon.wait_for("download_finished", timeout=60, vod_id=second)
            metrics = (await get(f"{base}/metrics")).text
            assert "youtube_auth_waiting 1.0" in metrics
            google.fake.add_refresh_token("a-fresh-token")
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vodarchiver", "auth", "youtube", "--token-stdin",
                env=google.env(db_url, open_dir, YT_REFRESH_TOKEN=""),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(cli.communicate(b"a-fresh-token\n"), 30)
            assert cli.returncode == 0, err.decode()
            assert b"a-fresh-token" not in out + err
            await daemon.wait_for("upload_finished", timeout=60, vod_id=first)
            await daemon.wait_for("upload_finished", timeout=60, vod_id=second)
            assert (await get(f"{base}/readyz")).json()["checks"]["youtube_auth"]["ok"]
        finally:
            await daemon.stop()
    assert len(google.fake.uploaded()) == 2
    assert "a-fresh-token" not in daemon.output
    assert google.fake.refresh_token not in daemon.output


async def test_auth_youtube_runs_the_consent_flow_and_stores_the_token_sealed(
    google: Google, db_url: str, open_dir: Path
) -> None:
    """`vodarchiver auth youtube`: the consent URL, the local redirect, the code exchange, sealed."""
    env = google.env(
        db_url,
        open_dir,
        YT_REFRESH_TOKEN="",
        GOOGLE_AUTH_URL=f"{google.url}/auth",
        OAUTHLIB_INSECURE_TRANSPORT="1",
    )  # the fake token endpoint is plain http
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vodarchiver", "auth", "youtube", "--no-browser", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert cli.stdout is not None
    try:
        async with asyncio.timeout(30):
            while not (line := (await cli.stdout.readline()).decode()).startswith("http"):
                assert line, "the consent URL was never printed"
        consent = urlsplit(line.strip())
        assert consent.path == "/auth"
        query = {k: v[0] for k, v in parse_qs(consent.query).items()}
        assert query["access_type"] == "offline"
        assert "youtube.upload" in query["scope"]
        google.fake.add_authorization_code(
            "the-code", redirect_uri=query["redirect_uri"],
            code_challenge=query.get("code_challenge"), refresh_token="consented-token",
        )  # fmt: skip
        redirect = (
            f"{query['redirect_uri']}?code=the-code&state={query['state']}&scope={query['scope']}"
        )
        answer = await get(redirect)
        assert answer.status_code == 200
        _, err = await asyncio.wait_for(cli.communicate(), 30)
    finally:
        if cli.returncode is None:
            cli.kill()
            await cli.wait()
    assert cli.returncode == 0, err.decode()
    for secret in (b"consented-token", b"the-code", b"ya29."):  # token, code, access token
        assert secret not in err
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT sealed, scheme FROM oauth_tokens WHERE provider = 'youtube'"
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[1] == "aes-256-gcm"
    assert b"consented-token" not in bytes(row[0])
    cipher = TokenCipher(base64.b64decode(KEY))
    assert b"consented-token" in cipher.open(bytes(row[0]), row[1], provider="youtube", channel="")


async def test_no_encryption_key_means_no_token_is_stored(
    google: Google, db_url: str, open_dir: Path
) -> None:
    """Without ENCRYPTION_KEY: `auth youtube` refuses (naming the variable), uploads stay off."""
    env = google.env(db_url, open_dir, ENCRYPTION_KEY="", YT_REFRESH_TOKEN="")
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vodarchiver", "auth", "youtube", "--token-stdin", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(cli.communicate(b"some-token\n"), 30)
    assert cli.returncode == 2
    assert b"ENCRYPTION_KEY" in err
    daemon, code = await run_until_exit(google.env(db_url, open_dir, ENCRYPTION_KEY=""))
    assert code == 2  # YT_REFRESH_TOKEN cannot be stored without the key
    assert "ENCRYPTION_KEY: must be set to store YT_REFRESH_TOKEN" in daemon.output
    assert google.fake.refresh_token not in daemon.output
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM oauth_tokens")
        assert await cur.fetchone() == (0,)
