"""The daemon as a process with every fake: operator actions end to end, through HTTP and the CLI."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import psycopg

from tests.acceptance.test_download_daemon import World, world
from tests.acceptance.test_upload_daemon import Google, google
from tests.daemon import Daemon, base_env

__all__ = ["google", "world"]  # the fixtures, shared with the download and upload tests


async def cli(base: str, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`vodarchiver vods ...` against the running daemon; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vodarchiver", "vods", "--url", base, *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def published(daemon: Daemon, vod_id: str, nth: int, timeout: float = 120) -> None:
    """Wait until the daemon has logged `upload_finished` for the VOD `nth` times."""
    for _ in range(int(timeout * 10)):
        found = [e for e in daemon.events if e.get("event") == "upload_finished"
                 and e.get("vod_id") == vod_id]  # fmt: skip
        if len(found) >= nth:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{vod_id} was not published {nth} times:\n{daemon.output[-3000:]}")


def env_for(world: World, google: Google, db_url: str, data_dir: Path) -> dict[str, str]:
    """Discovery, downloads and uploads all on, against the fakes."""
    env = google.env(db_url, data_dir, MAX_CONCURRENT_DOWNLOADS="1")
    return {**env, **world.env(db_url, data_dir), **{k: v for k, v in env.items()
            if k.startswith(("YT_", "YOUTUBE_", "GOOGLE_", "UPLOAD_", "ENCRYPTION"))}}  # fmt: skip


async def test_reprocess_publishes_a_second_generation_and_delete_old_removes_it_later(
    world: World, google: Google, db_url: str, open_dir: Path
) -> None:
    """An uploaded VOD reprocessed (CLI) becomes a second video with gen=2 in its marker, the first untouched; reprocessed again with delete_old (HTTP), generation 2's video is deleted once generation 3 is confirmed."""
    vod_id = world.add_vod("alice", "r1")
    env = env_for(world, google, db_url, open_dir)
    daemon = await Daemon(env).start()
    try:
        base = await daemon.started()
        await published(daemon, vod_id, 1)
        first = [v.id for v in google.fake.uploaded()]
        assert len(first) == 1
        code, out, err = await cli(base, env, "reprocess", vod_id)
        assert code == 0, err
        assert '"generation": 2' in out
        await published(daemon, vod_id, 2)
        videos = google.fake.uploaded()
        assert len(videos) == 2
        assert f"[vodarchiver vod={vod_id} gen=2 part=1/1]" in videos[1].description
        assert videos[0].id == first[0]  # the first generation's video is untouched
        async with httpx.AsyncClient(base_url=base) as client:
            again = await client.post(f"/admin/vods/{vod_id}/reprocess", json={"delete_old": True})
            assert again.json()["generation"] == 3
            await published(daemon, vod_id, 3)
            await daemon.wait_for("old_video_deleted", timeout=30, vod_id=vod_id)
            body = (await client.get(f"/vods/{vod_id}")).json()
        assert set(google.fake.deleted_videos) == {videos[1].id}
        assert first[0] in {v.id for v in google.fake.uploaded()}
        assert [(h["generation"], h["deleted_at"] is not None) for h in body["history"]] == [
            (1, False),
            (2, True),
        ]
        assert body["generation"] == 3
        assert body["state"] == "uploaded"
    finally:
        await daemon.stop()


async def test_a_canceled_vod_restored_from_the_cli_ends_on_youtube(
    world: World, google: Google, db_url: str, open_dir: Path
) -> None:
    """Canceled before its download (while the CDN is slow), refused a retry with 409, restored, it is downloaded and published."""
    vod_id = world.add_vod("alice", "c1")
    world.cdn.throttle_bps = 200_000
    env = env_for(world, google, db_url, open_dir)
    daemon = await Daemon(env).start()
    try:
        base = await daemon.started()
        await daemon.wait_for("download_started", timeout=60, vod_id=vod_id)
        code, out, err = await cli(base, env, "cancel", vod_id)
        assert code == 0, err
        await daemon.wait_for("download_canceled", timeout=10, vod_id=vod_id)
        code, out, err = await cli(base, env, "retry", vod_id)
        assert code == 1
        assert "refused" in err
        assert '"allowed"' in out
        world.cdn.throttle_bps = 0.0
        code, out, err = await cli(base, env, "restore", vod_id)
        assert code == 0, err
        await published(daemon, vod_id, 1)
        code, out, _ = await cli(base, env, "show", vod_id)
        assert '"state": "uploaded"' in out
    finally:
        await daemon.stop()


async def test_the_runbooks_update_gets_the_vod_published_again(
    world: World, google: Google, db_url: str, open_dir: Path
) -> None:
    """The runbook's force-reprocess UPDATE, run verbatim while the daemon runs, gets the VOD downloaded and published again."""
    vod_id = world.add_vod("alice", "u1")
    daemon = await Daemon(env_for(world, google, db_url, open_dir)).start()
    try:
        await daemon.started()
        await published(daemon, vod_id, 1)
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute(
                "UPDATE vods SET processed=0, processing_error=NULL, youtube_url=NULL "
                f"WHERE twitch_vod_id='{vod_id}'"
            )
        await published(daemon, vod_id, 2)
        assert len(google.fake.uploaded()) == 2
    finally:
        await daemon.stop()


async def test_the_cli_acts_with_the_admin_token_and_is_refused_without_it(
    db_url: str, open_dir: Path
) -> None:
    """With ADMIN_TOKEN set on the daemon, `vodarchiver vods priority` without the token exits 1 naming ADMIN_TOKEN and changes nothing; with it, the priority is set and the audit row says `token`."""
    token = "cli-admin-token-5d21"
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO vods (twitch_vod_id, channel, title, state) "
                           "VALUES ('920', 'alice', 'waiting', 'failed_permanent')")  # fmt: skip
    env = base_env(DATABASE_URL=db_url, DATA_DIR=str(open_dir), ADMIN_TOKEN=token)
    daemon = await Daemon(env).start()
    try:
        base = await daemon.started()
        without = {k: v for k, v in env.items() if k != "ADMIN_TOKEN"}
        code, _, err = await cli(base, without, "priority", "920", "5")
        assert code == 1
        assert "ADMIN_TOKEN" in err
        assert token not in err
        code, out, err = await cli(base, env, "priority", "920", "5")
        assert code == 0, err
        assert '"priority": 5' in out
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            rows = await (await conn.execute(
                "SELECT action, actor, from_state, to_state FROM vod_audit")).fetchall()  # fmt: skip
        assert rows == [("priority", "token", "failed_permanent", "failed_permanent")]
    finally:
        await daemon.stop()
