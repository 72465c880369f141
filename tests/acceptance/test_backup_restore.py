"""`vodarchiver backup` and `restore`: a database with VODs, chat and a sealed token, dumped,
restored into an empty database, and a daemon resuming from the copy with nothing lost."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.acceptance.test_upload_daemon import KEY, ByteTrigger, Google, add_downloaded
from tests.conftest import DatabaseFactory
from tests.daemon import Daemon, base_env, get
from tests.fakes.server import LocalServer
from tests.fakes.youtube import FakeGoogle
from vodarchiver.youtube.crypto import TokenCipher


@pytest.fixture
async def google() -> AsyncIterator[Google]:
    """The fake Google, started."""
    fake = FakeGoogle()
    async with LocalServer(ByteTrigger(fake)) as server:
        yield Google(fake, ByteTrigger(fake), server.url)


async def cli(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str]:
    """Run `vodarchiver ARGS` to its end; (exit status, combined output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vodarchiver", *args, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def seed_chat(db_url: str, vod_id: str, count: int) -> None:
    """`count` chat messages attached to a VOD."""
    start = datetime.now(UTC) - timedelta(days=1)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT id FROM vods WHERE twitch_vod_id = %s", [vod_id])
        row = await cur.fetchone()
        assert row is not None
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO chat_messages (msg_id, vod_id, channel, username, message, sent_at,"
                " offset_ms, tags) VALUES (%s, %s, 'alice', 'viewer', %s, %s, %s, %s)",
                [(f"m{i}", row[0], f"message {i} ✓ 'quoted'", start + timedelta(seconds=i),
                  i * 1000, json.dumps({"badges": "subscriber/12"})) for i in range(count)],
            )  # fmt: skip


async def snapshot(db_url: str) -> dict[str, Any]:
    """Every row of every table, in a stable order, and every sequence's position."""
    found: dict[str, Any] = {}
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        for (table,) in await cur.fetchall():
            rows = await conn.execute(
                psycopg.sql.SQL("SELECT * FROM {} ORDER BY 1").format(psycopg.sql.Identifier(table))
            )
            found[table] = [tuple(r) for r in await rows.fetchall()]
        cur = await conn.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
            " ORDER BY 1"
        )
        found["sequences"] = await cur.fetchall()
    return found


async def test_backup_restore_round_trip_and_the_daemon_resumes_from_the_copy(
    google: Google, db_url: str, databases: DatabaseFactory, open_dir: Path, tmp_path: Path
) -> None:
    """Backup (dump + manifest), restore into an empty database: every row, sequence and the
    sealed token intact, and a daemon on the copy publishes the VOD that was waiting."""
    data = os.urandom(300_000)
    await add_downloaded(db_url, open_dir, "7001", data)
    await add_downloaded(db_url, open_dir, "7002", os.urandom(1000))
    await seed_chat(db_url, "7001", 500)
    env = google.env(db_url, open_dir, YT_REFRESH_TOKEN="")
    code, out = await cli("auth", "youtube", "--token-stdin", env=env,
                          stdin=google.fake.refresh_token.encode() + b"\n")  # fmt: skip
    assert code == 0, out
    before = await snapshot(db_url)
    assert len(before["chat_messages"]) == 500
    assert len(before["oauth_tokens"]) == 1

    backup_dir = tmp_path / "backup"
    code, out = await cli("backup", str(backup_dir), env=env)
    assert code == 0, out
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    assert listed["alice/7001/7001.mp4"]["size"] == len(data)
    assert not any(path.startswith("postgres/") for path in listed)
    assert google.fake.refresh_token not in (backup_dir / "manifest.json").read_text()

    restored = await databases.empty()
    renv = google.env(restored, open_dir, YT_REFRESH_TOKEN="")
    code, out = await cli("restore", str(backup_dir), env=renv)
    assert code == 0, out
    assert await snapshot(restored) == before

    async with await psycopg.AsyncConnection.connect(restored) as conn:
        cur = await conn.execute(
            "SELECT sealed, scheme FROM oauth_tokens WHERE provider = 'youtube'"
        )
        row = await cur.fetchone()
    assert row is not None
    cipher = TokenCipher(base64.b64decode(KEY))
    opened = cipher.open(bytes(row[0]), row[1], provider="youtube", channel="")
    assert google.fake.refresh_token.encode() in opened

    daemon = await Daemon(renv).start()
    try:
        base = await daemon.started()
        await daemon.wait_for("upload_finished", timeout=60, vod_id="7001")
        vod = (await get(f"{base}/vods/7001")).json()
        assert vod["state"] == "uploaded"
        chat = (await get(f"{base}/vods/7001/chat", params={"limit": "1000"})).json()
        assert len(chat["items"]) == 500
    finally:
        await daemon.stop()
    uploaded = google.fake.uploaded()
    assert hashlib.sha256(data).hexdigest() in {v.sha256 for v in uploaded}


async def test_restore_refuses_a_tampered_dump_a_non_empty_database_and_missing_files(
    db_url: str, databases: DatabaseFactory, open_dir: Path, tmp_path: Path
) -> None:
    """A changed dump, a target with tables, or DATA_DIR missing a listed file: exit 1, nothing
    loaded; --ignore-files restores the database regardless of the files."""
    await add_downloaded(db_url, open_dir, "7101", os.urandom(5000))
    env = base_env(DATABASE_URL=db_url, DATA_DIR=str(open_dir))
    backup_dir = tmp_path / "backup"
    code, out = await cli("backup", str(backup_dir), env=env)
    assert code == 0, out
    code, out = await cli("backup", str(backup_dir), env=env)
    assert code == 1
    assert "not empty" in out

    code, out = await cli("restore", str(backup_dir), env=env)  # the source still has tables
    assert code == 1
    assert "already has" in out

    empty = await databases.empty()
    renv = base_env(DATABASE_URL=empty, DATA_DIR=str(open_dir))
    (open_dir / "alice/7101/7101.mp4").unlink()
    code, out = await cli("restore", str(backup_dir), env=renv)
    assert code == 1
    assert "missing: alice/7101/7101.mp4" in out

    dump = backup_dir / "database.dump"
    original = dump.read_bytes()
    dump.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    code, out = await cli("restore", str(backup_dir), "--ignore-files", env=renv)
    assert code == 1
    assert "checksum" in out
    async with await psycopg.AsyncConnection.connect(empty) as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert await cur.fetchone() == (0,)

    dump.write_bytes(original)
    code, out = await cli("restore", str(backup_dir), "--ignore-files", env=renv)
    assert code == 0, out
    assert "1 file problems ignored" in out


async def test_embedded_backup_while_the_daemon_runs_restores_into_a_fresh_data_dir(
    open_dir: Path, tmp_path: Path
) -> None:
    """With the embedded server: `backup` reaches the running daemon's server, `restore` into a new
    DATA_DIR (files copied, no cluster) starts a fresh server, and a daemon there serves the rows."""
    source = open_dir / "a"
    source.mkdir()
    # The chat replay stage would add its own job row for the VOD while the daemons run: off, so
    # the snapshots compare exactly what was backed up with what was restored.
    env = base_env(DATA_DIR=str(source), CHAT_REPLAY="0")
    daemon = await Daemon(env).start()
    try:
        await daemon.started(timeout=30)
        port = (await daemon.wait_for("embedded_pg_started"))["port"]
        password = (source / "postgres/password").read_text().strip()
        url = psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=str(port), user="vodarchiver", dbname="vodarchiver",
            password=password,
        )  # fmt: skip
        await add_downloaded(url, source, "7201", os.urandom(4000))
        await seed_chat(url, "7201", 50)
        before = await snapshot(url)
        backup_dir = tmp_path / "backup"
        code, out = await cli("backup", str(backup_dir), env=env)
        assert code == 0, out
    finally:
        await daemon.stop()

    target = open_dir / "b"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("postgres"))
    renv = base_env(DATA_DIR=str(target), CHAT_REPLAY="0")
    code, out = await cli("restore", str(backup_dir), env=renv)
    assert code == 0, out
    assert "every file matches" in out

    daemon = await Daemon(renv).start()
    try:
        base = await daemon.started(timeout=30)
        port = (await daemon.wait_for("embedded_pg_started"))["port"]
        vod = (await get(f"{base}/vods/7201")).json()
        assert vod["state"] == "downloaded"
        chat = (await get(f"{base}/vods/7201/chat", params={"limit": "1000"})).json()
        assert len(chat["items"]) == 50
        url = psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=str(port), user="vodarchiver", dbname="vodarchiver",
            password=(target / "postgres/password").read_text().strip(),
        )  # fmt: skip
        assert await snapshot(url) == before
    finally:
        await daemon.stop()
