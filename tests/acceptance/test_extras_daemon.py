"""The daemon as a process setting thumbnails and chat captions, SIGKILLed midway and restarted."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import psycopg_pool
import pytest
from starlette.types import Receive, Scope, Send

from tests.acceptance import test_upload_daemon
from tests.acceptance.test_upload_daemon import KEY, Google
from tests.daemon import Daemon
from tests.fakes.server import LocalServer
from vodarchiver.db.uploads import UploadStore
from vodarchiver.youtube.crypto import TokenCipher, parse_key
from vodarchiver.youtube.oauth import store_refresh_token

google = test_upload_daemon.google  # the fake Google fixture
JPEG = b"\xff\xd8\xff\xe0" + bytes(3000) + b"\xff\xd9"
VODS = ("6001", "6002", "6003")


class GatedCdn:
    """Twitch's thumbnail CDN; the last VOD's thumbnail hangs until `release` is set."""

    def __init__(self) -> None:
        self.asked_last = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if f"/{VODS[-1]}/" in scope["path"]:
            self.asked_last.set()
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"image/jpeg"),
                                (b"content-length", str(len(JPEG)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": JPEG})


@pytest.fixture
async def cdn() -> AsyncIterator[tuple[GatedCdn, str]]:
    """The gated CDN on 127.0.0.1."""
    fake = GatedCdn()
    async with LocalServer(fake) as server:
        yield fake, server.url
        fake.release.set()


async def published(db_url: str, google: Google, cdn_url: str) -> dict[str, str]:
    """Three VODs already on YouTube (one part each), with chat and Twitch thumbnails."""
    videos = {}
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for vod_id in VODS:
            video = google.fake.add_existing_video(f"Stream {vod_id}")
            videos[vod_id] = video.id
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, state, download_state, processed, date,"
                " duration_s, thumbnail_url) VALUES (%s, 'alice', 'uploaded', 'downloaded', 1, %s,"
                " 600, %s)",
                (vod_id, datetime.now(UTC) - timedelta(days=1),
                 f"{cdn_url}/cf_vods/{vod_id}/thumb0-%{{width}}x%{{height}}.jpg"),
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO youtube_uploads (vod_id, part, parts, file_path, file_size,"
                " fingerprint, duration_s, marker, video_id) SELECT id, 1, 1, '/gone.mp4', 1,"
                " 'f', 600, 'm', %s FROM vods WHERE twitch_vod_id = %s",
                (video.id, vod_id),
            )
            await conn.execute(
                "INSERT INTO chat_messages (msg_id, vod_id, channel, message, sent_at, offset_ms,"
                " username) SELECT %s || '-' || s, id, 'alice', 'hi ' || s, now(), s * 10000,"
                " 'bob' FROM vods, generate_series(0, 5) s WHERE twitch_vod_id = %s",
                (vod_id, vod_id),
            )
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=1, open=False) as pool:
        await store_refresh_token(UploadStore(pool), TokenCipher(parse_key(KEY)),
                                  google.fake.refresh_token, bootstrap=True)  # fmt: skip
    return videos


async def all_done(db_url: str, within: float) -> None:
    """Wait (with a deadline) until every extra is recorded done."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            cur = await conn.execute("SELECT count(*) FILTER (WHERE state = 'done'), count(*) "
                                     "FROM youtube_extras")  # fmt: skip
            done, total = (await cur.fetchone()) or (0, 0)
        if total == 2 * len(VODS) and done == total:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("extras not all done in time")


async def test_thumbnails_and_captions_exactly_once_across_a_sigkill(
    google: Google, cdn: tuple[GatedCdn, str], db_url: str, open_dir: Path
) -> None:
    """SIGKILL while the last thumbnail is being fetched: after a restart each part has one thumbnail and one caption track."""
    gate, cdn_url = cdn
    videos = await published(db_url, google, cdn_url)
    env = google.env(db_url, open_dir, YOUTUBE_CHAT_CAPTIONS="1", HELIX_TIMEOUT="30s")
    first = await Daemon(env).start()
    try:
        await first.wait_for("extras_enabled")
        await asyncio.wait_for(gate.asked_last.wait(), 30)
        first.send(signal.SIGKILL)
        await first.wait_exit()
    finally:
        await first.stop()
    assert google.fake.count("thumbnails.set") == 2  # killed before the third
    gate.release.set()
    second = await Daemon(env).start()
    try:
        await all_done(db_url, within=30)
    finally:
        second.send(signal.SIGTERM)
        await second.wait_exit()
        await second.stop()
    assert {v: len(google.fake.thumbnails.get(i, [])) for v, i in videos.items()} == dict.fromkeys(
        VODS, 1
    )
    assert {v: len(google.fake.captions.get(i, [])) for v, i in videos.items()} == dict.fromkeys(
        VODS, 1
    )
    assert google.fake.count("captions.insert") == len(VODS)
