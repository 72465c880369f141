"""The daemon as a process: discovered VODs are downloaded, survive a SIGKILL, and can be canceled."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import Daemon, base_env, get
from tests.fakes.cdn import FakeCdn
from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch
from tests.integration.test_downloader import ytdlp_processes
from tests.media import HlsVod, make_hls


@dataclass
class World:
    """Fake Twitch whose VOD URLs point at the fake CDN."""

    twitch: FakeTwitch
    twitch_url: str
    cdn: FakeCdn
    cdn_url: str
    vod: HlsVod

    def add_vod(self, login: str, name: str) -> str:
        """A VOD on Twitch whose URL is an HLS playlist on the CDN; returns its id."""
        video = self.twitch.add_vod(login, duration_s=round(self.vod.duration_s))
        video["url"] = f"{self.cdn_url}{self.cdn.add(name, self.vod)}"
        return str(video["id"])

    def env(self, db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
        """Settings for a daemon archiving channel alice from the fakes into `data_dir`."""
        settings = {
            "DATABASE_URL": db_url, "DATA_DIR": str(data_dir), "TWITCH_CHANNELS": "alice",
            "TWITCH_CLIENT_ID": "fake-client-id", "TWITCH_CLIENT_SECRET": "fake-client-secret",
            "TWITCH_API_URL": f"{self.twitch_url}/helix", "TWITCH_AUTH_URL": f"{self.twitch_url}/oauth2",
            "DOWNLOAD_CONCURRENT_FRAGMENTS": "4", "DISK_MIN_FREE_GB": "0", "DOWNLOAD_SIZE_ESTIMATE_MBPS": "1",
        }  # fmt: skip
        return base_env(**{**settings, **extra})


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """Both fakes on 127.0.0.1, channel alice, a 4-minute VOD to serve."""
    twitch, cdn = FakeTwitch(), FakeCdn()
    twitch.add_channel("alice")
    async with LocalServer(twitch) as tw, LocalServer(cdn) as cd:
        yield World(twitch, tw.url, cdn, cd.url, make_hls(240))


async def vod(base: str, vod_id: str) -> dict[str, Any]:
    """GET /vods/{id}."""
    body: dict[str, Any] = (await get(f"{base}/vods/{vod_id}")).json()
    return body


async def test_a_discovered_vod_is_downloaded_and_verified(
    world: World, db_url: str, open_dir: Path
) -> None:
    """Discovery queues the VOD; the stage downloads, remuxes and verifies it; the API shows the file and progress."""
    vod_id = world.add_vod("alice", "v1")
    daemon = await Daemon(world.env(db_url, open_dir)).start()
    try:
        base = await daemon.started()
        finished = await daemon.wait_for("download_finished", timeout=60, vod_id=vod_id)
        line = await daemon.wait_for("vod_downloaded", vod_id=vod_id)  # the runbook's line
        assert (line["component"], line["msg"]) == ("vod_process", "vod downloaded")
        assert line["dl_ms"] > 0
        assert line["queue_depth"] >= 1  # this VOD, downloaded and waiting for its upload
        body = await vod(base, vod_id)
        assert body["state"] == "downloaded"
        assert body["download_state"] == "downloaded"
        assert body["download_progress"]["percent"] == 100.0
        assert Path(body["file_path"]).is_file()
        assert abs(finished["duration_s"] - world.vod.duration_s) < 2
        started = await daemon.wait_for("download_started", vod_id=vod_id)
        assert started["corr"] == finished["corr"] == body["corr"]  # one corr follows the VOD
        metrics = (await get(f"{base}/metrics")).text
        assert "vod_downloads_succeeded_total 1.0" in metrics
        status = (await get(f"{base}/status")).json()
        assert status["avg_download_ms"] > 0
    finally:
        await daemon.stop()


async def test_sigkill_midway_then_restart_resumes_and_completes(
    world: World, db_url: str, open_dir: Path
) -> None:
    """Killed with SIGKILL about half-way, the restarted daemon resumes from the fragments on disk and finishes a correct file."""
    vod_id = world.add_vod("alice", "v1")
    world.cdn.throttle_bps = 2_000_000
    halfway = world.cdn.when_served(world.vod.total_bytes // 2)
    env = world.env(db_url, open_dir)
    first = await Daemon(env).start()
    try:
        await first.started()
        await asyncio.wait_for(halfway.wait(), 60)
        first.send(signal.SIGKILL)
        await first.wait_exit()
    finally:
        await first.stop()
    directory = open_dir.resolve() / "alice" / vod_id
    deadline = time.monotonic() + 10
    while ytdlp_processes(directory):  # the parent-death signal takes yt-dlp down with the daemon
        assert time.monotonic() < deadline, "yt-dlp outlived its killed daemon"
        await asyncio.sleep(0.05)
    served_before = world.cdn.bytes_served
    world.cdn.reset()
    second = await Daemon(env).start()
    try:
        base = await second.started()
        await second.wait_for("downloads_resumed_after_restart")
        finished = await second.wait_for("download_finished", timeout=90, vod_id=vod_id)
        assert (await vod(base, vod_id))["state"] == "downloaded"
    finally:
        await second.stop()
    assert (
        world.cdn.bytes_served < world.vod.total_bytes
    )  # fewer bytes than the whole the second time
    assert served_before + world.cdn.bytes_served >= world.vod.total_bytes
    assert abs(finished["duration_s"] - world.vod.duration_s) < 2


async def test_cancel_through_the_api_stops_the_download_within_two_seconds(
    world: World, db_url: str, open_dir: Path
) -> None:
    """POST /admin/vods/{id}/cancel stops yt-dlp, records `canceled` (not a failure) and removes the files."""
    vod_id = world.add_vod("alice", "v1")
    world.cdn.throttle_bps = 300_000
    running = world.cdn.when_served(300_000)
    daemon = await Daemon(world.env(db_url, open_dir)).start()
    try:
        base = await daemon.started()
        await asyncio.wait_for(running.wait(), 60)
        directory = open_dir.resolve() / "alice" / vod_id
        assert ytdlp_processes(directory)
        begin = time.monotonic()
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.post(f"{base}/admin/vods/{vod_id}/cancel")
        assert answer.status_code == 200
        assert answer.json()["previous_state"] == "downloading"
        await daemon.wait_for("download_canceled", timeout=2)
        assert time.monotonic() - begin < 2
        assert ytdlp_processes(directory) == []
        assert not directory.exists()
        body = await vod(base, vod_id)
        assert (body["state"], body["download_attempts"]) == ("canceled", 0)
        async with httpx.AsyncClient(timeout=5) as client:
            again = await client.post(f"{base}/admin/vods/{vod_id}/cancel")
            missing = await client.post(f"{base}/admin/vods/0/cancel")
        assert again.status_code == 409
        assert missing.status_code == 404
    finally:
        await daemon.stop()
