"""The daemon as a subprocess, against real PostgreSQL servers, over HTTP."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import DatabaseFactory, make_open_dir
from tests.daemon import Daemon, base_env, get, poll_status, run_until_exit
from vodarchiver import process
from vodarchiver.db.embedded import EmbeddedPostgres, free_loopback_port
from vodarchiver.db.migrate import load_migrations


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid in the embedded cluster's postmaster.pid, if the file exists."""
    pidfile = data_dir / "postgres" / "cluster" / "postmaster.pid"
    try:
        return int(pidfile.read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


async def test_no_settings_starts_on_embedded_db_and_stops_cleanly(open_dir: Path) -> None:
    """With no settings the daemon starts its own PostgreSQL, serves /healthz, and SIGTERM leaves nothing behind."""
    daemon = await Daemon(base_env(), cwd=open_dir).start()  # DATA_DIR defaults to ./data
    try:
        base = await daemon.started(timeout=20)
        assert (await get(f"{base}/healthz")).status_code == 200
        started = await daemon.wait_for("embedded_pg_started")
        pg_pid = started["pid"]
        assert process.pid_alive(pg_pid)
        assert postmaster_pid(open_dir / "data") == pg_pid

        daemon.send(signal.SIGTERM)
        code = await daemon.wait_exit(timeout=10)
    finally:
        await daemon.stop()
    assert code == 0, daemon.output
    assert not process.pid_alive(pg_pid)
    assert postmaster_pid(open_dir / "data") is None
    assert "Traceback" not in daemon.output
    assert (open_dir / "data" / "postgres" / "password").read_text().strip() not in daemon.output


async def test_sigint_also_drains_and_exits_zero(db_url: str) -> None:
    """SIGINT (Ctrl-C) stops the daemon like SIGTERM: exit 0, within 10 seconds."""
    daemon = await Daemon(base_env(DATABASE_URL=db_url)).start()
    try:
        await daemon.started()
        daemon.send(signal.SIGINT)
        code = await daemon.wait_exit(timeout=10)
    finally:
        await daemon.stop()
    assert code == 0
    await daemon.wait_for("daemon_stopped", exit_code=0)


@pytest.mark.parametrize(
    ("env", "variables"),
    [
        ({"HTTP_ADDR": "notaport"}, ["HTTP_ADDR"]),
        ({"DATABASE_URL": "postgresql://bogus:1/x", "DATABASE_CONNECT_TIMEOUT": "1s"}, ["DATABASE_URL"]),
        ({"DATABASE_URL": "mysql://x", "LOG_LEVEL": "loud", "DATABASE_POOL_MAX_SIZE": "-3"},
         ["DATABASE_URL", "LOG_LEVEL", "DATABASE_POOL_MAX_SIZE"]),
    ],
)  # fmt: skip
async def test_bad_settings_exit_2_naming_each_variable(
    env: dict[str, str], variables: list[str], open_dir: Path
) -> None:
    """Invalid or unusable settings stop start-up with exit code 2, a message naming every bad variable, and no traceback."""
    daemon, code = await run_until_exit(base_env(DATA_DIR=str(open_dir), **env))
    assert code == 2, daemon.output
    for variable in variables:
        assert variable in daemon.output
    assert "Traceback" not in daemon.output


async def test_the_default_wait_for_an_unreachable_database_ends_in_exit_2(open_dir: Path) -> None:
    """With the default DATABASE_CONNECT_TIMEOUT, an unreachable DATABASE_URL ends in exit 2 naming it."""
    daemon, code = await run_until_exit(
        base_env(DATA_DIR=str(open_dir), DATABASE_URL="postgresql://bogus:1/x")
    )
    assert code == 2
    failed = await daemon.wait_for("startup_failed")
    assert failed["variable"] == "DATABASE_URL"
    assert "bogus:1" in failed["error"]


async def test_http_addr_in_use_exits_2_naming_it(db_url: str) -> None:
    """A taken HTTP_ADDR is reported as such, naming the variable."""
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        daemon, code = await run_until_exit(
            base_env(DATABASE_URL=db_url, HTTP_ADDR=f"127.0.0.1:{port}")
        )
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert code == 2
    failed = await daemon.wait_for("startup_failed")
    assert failed["variable"] == "HTTP_ADDR"
    assert "already in use" in failed["error"]


@pytest.fixture
async def own_server() -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, on a fixed port so it can be stopped and started again.

    It demands a password (SCRAM), unlike the trust-auth server the other tests share.
    """
    root = make_open_dir("own")
    server = EmbeddedPostgres(root, port=free_loopback_port(), durable=False)
    await server.start()
    yield server
    await server.stop()
    shutil.rmtree(root, ignore_errors=True)


async def test_healthz_follows_postgres_down_and_back_without_restart(
    own_server: EmbeddedPostgres, open_dir: Path
) -> None:
    """Stopping PostgreSQL turns /healthz to 503 within 5 s, and back to 200 when it returns, same process."""
    server = own_server
    daemon = await Daemon(base_env(DATABASE_URL=server.conninfo, DATA_DIR=str(open_dir))).start()
    try:
        base = await daemon.started()
        pid = daemon.proc.pid if daemon.proc else None
        assert (await get(f"{base}/healthz")).status_code == 200

        await server.stop()
        down_after = await poll_status(f"{base}/healthz", 503, within=5.0)
        ready = await get(f"{base}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["ok"] is False
        assert (await get(f"{base}/status")).status_code == 503

        await server.start()
        await poll_status(f"{base}/healthz", 200, within=20.0)
        assert (await get(f"{base}/status")).status_code == 200
        assert daemon.proc is not None
        assert daemon.proc.returncode is None
        assert daemon.proc.pid == pid
        assert down_after < 5.0
    finally:
        await daemon.stop()


async def test_two_daemons_on_one_empty_database_apply_the_schema_once(
    databases: DatabaseFactory,
) -> None:
    """Two daemons started together against an empty database both come up; each migration is applied once."""
    url = await databases.empty()
    first = Daemon(base_env(DATABASE_URL=url))
    second = Daemon(base_env(DATABASE_URL=url))
    try:
        await asyncio.gather(first.start(), second.start())
        bases = await asyncio.gather(first.started(), second.started())
        for base in bases:
            assert (await get(f"{base}/healthz")).status_code == 200
        applied_by = [
            d
            for d in (first, second)
            if any(e.get("event") == "migration_applied" for e in d.events)
        ]
        assert len(applied_by) == 1
    finally:
        await asyncio.gather(first.stop(), second.stop())
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (
            await conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version")
        ).fetchall()
    assert sorted(rows) == [(m.version, 1) for m in load_migrations()]


@pytest.fixture
async def role_with_password(pg_admin_url: str) -> AsyncIterator[tuple[str, str]]:
    """A login role with a password (superuser, so it may use any test database)."""
    role, password = f"vodarchiver_{secrets.token_hex(4)}", f"s3cr3t-{secrets.token_hex(8)}"
    async with await psycopg.AsyncConnection.connect(pg_admin_url, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    yield role, password
    async with await psycopg.AsyncConnection.connect(pg_admin_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_database_password_never_reaches_logs_errors_or_status(
    db_url: str, open_dir: Path, role_with_password: tuple[str, str]
) -> None:
    """A password inside DATABASE_URL appears in no log line, no error and no endpoint."""
    role, password = role_with_password
    with_password = psycopg.conninfo.make_conninfo(db_url, user=role, password=password)
    daemon = await Daemon(base_env(DATABASE_URL=with_password, LOG_LEVEL="debug")).start()
    try:
        base = await daemon.started()
        bodies = [
            (await get(f"{base}{path}")).text
            for path in ("/status", "/readyz", "/metrics", "/healthz")
        ]
        daemon.send(signal.SIGTERM)
        await daemon.wait_exit()
    finally:
        await daemon.stop()
    assert password not in daemon.output
    assert all(password not in body for body in bodies)

    unreachable = f"postgresql://user:{password}@127.0.0.1:1/x"
    failing, code = await run_until_exit(
        base_env(DATABASE_URL=unreachable, DATABASE_CONNECT_TIMEOUT="1s", DATA_DIR=str(open_dir))
    )
    assert code == 2
    assert "DATABASE_URL" in failing.output
    assert password not in failing.output


async def test_wrong_password_fails_at_once_without_revealing_it(
    own_server: EmbeddedPostgres, open_dir: Path
) -> None:
    """A refused password ends start-up at once (no 10 s wait) with exit 2, naming DATABASE_URL, hiding the password."""
    wrong_password = "not-the-password-" + secrets.token_hex(6)
    wrong = psycopg.conninfo.make_conninfo(own_server.conninfo, password=wrong_password)
    begin = time.monotonic()
    refused, code = await run_until_exit(base_env(DATABASE_URL=wrong, DATA_DIR=str(open_dir)))
    elapsed = time.monotonic() - begin
    assert code == 2
    failed = await refused.wait_for("startup_failed")
    assert failed["variable"] == "DATABASE_URL"
    assert "password authentication failed" in failed["error"]
    assert elapsed < 5, "a refused password must fail at once, not after DATABASE_CONNECT_TIMEOUT"
    assert wrong_password not in refused.output


async def test_killed_daemon_leaves_no_server_and_restarts_on_its_data(open_dir: Path) -> None:
    """After SIGKILL of the daemon its embedded server stops by itself; the next start reuses the data."""
    env = base_env(DATA_DIR=str(open_dir))
    daemon = await Daemon(env).start()
    try:
        await daemon.started()
        pg_pid = (await daemon.wait_for("embedded_pg_started"))["pid"]
        port = (await daemon.wait_for("embedded_pg_started"))["port"]
        conninfo = psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=str(port), user="vodarchiver", dbname="vodarchiver",
            password=(open_dir / "postgres" / "password").read_text().strip(),
        )  # fmt: skip
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute("INSERT INTO kv (key, value) VALUES ('survivor', 'yes')")
        daemon.send(signal.SIGKILL)
        await daemon.wait_exit()
    finally:
        await daemon.stop()

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while process.pid_alive(pg_pid):  # the kernel's parent-death signal makes it shut down
        assert loop.time() < deadline, "embedded PostgreSQL outlived its killed daemon"
        await asyncio.sleep(0.05)

    again = await Daemon(env).start()
    try:
        base = await again.started()
        assert (await get(f"{base}/healthz")).status_code == 200
        assert "embedded_pg_initdb" not in {e.get("event") for e in again.events}
        port = (await again.wait_for("embedded_pg_started"))["port"]
        conninfo = psycopg.conninfo.make_conninfo(conninfo, port=str(port))
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            row = await (
                await conn.execute("SELECT value FROM kv WHERE key = 'survivor'")
            ).fetchone()
        assert row == ("yes",)
        again.send(signal.SIGTERM)
        assert await again.wait_exit() == 0
    finally:
        await again.stop()


async def test_second_daemon_on_the_same_data_dir_is_refused(open_dir: Path) -> None:
    """Two daemons cannot share one embedded database: the second exits 2 naming DATA_DIR."""
    env = base_env(DATA_DIR=str(open_dir))
    first = await Daemon(env).start()
    try:
        await first.started()
        second, code = await run_until_exit(env)
        assert code == 2
        failed = await second.wait_for("startup_failed")
        assert failed["variable"] == "DATA_DIR"
        assert (await get(f"{await first.started()}/healthz")).status_code == 200
    finally:
        await first.stop()


async def test_a_dying_part_stops_the_daemon_with_a_reason(open_dir: Path) -> None:
    """When a supervised part dies (here the embedded server, killed), the daemon logs which and why and exits 1."""
    daemon = await Daemon(base_env(DATA_DIR=str(open_dir))).start()
    try:
        await daemon.started()
        pg_pid = (await daemon.wait_for("embedded_pg_started"))["pid"]
        assert process.signal_pid(pg_pid, signal.SIGKILL)
        code = await daemon.wait_exit(timeout=15)
    finally:
        await daemon.stop()
    assert code == 1
    died = await daemon.wait_for("task_died")
    assert died["task"] == "embedded_pg_watch"
    assert "exited unexpectedly" in died["reason"]
    await daemon.wait_for("daemon_stopped", exit_code=1)


async def test_migrate_command_on_external_and_embedded_databases(
    databases: DatabaseFactory, open_dir: Path
) -> None:
    """`vodarchiver migrate` applies the schema and exits 0, on DATABASE_URL and on the embedded server."""
    url = await databases.empty()
    external, code = await run_until_exit(base_env(DATABASE_URL=url), args=("migrate",))
    assert code == 0, external.output
    done = await external.wait_for("migrate_done")
    assert done["applied"] == [f"{m.version:04d}_{m.name}" for m in load_migrations()]

    embedded, code = await run_until_exit(base_env(DATA_DIR=str(open_dir)), args=("migrate",))
    assert code == 0, embedded.output
    await embedded.wait_for("embedded_pg_stopped")
    assert postmaster_pid(open_dir) is None


@pytest.mark.parametrize(
    "moment", ["settings_loaded", "embedded_pg_initdb", "embedded_pg_started", "schema_ready"]
)
async def test_a_signal_during_start_up_is_a_clean_stop(moment: str, open_dir: Path) -> None:
    """SIGTERM at any point of start-up exits 0 and leaves no embedded server behind."""
    daemon = await Daemon(base_env(DATA_DIR=str(open_dir))).start()
    try:
        await daemon.wait_for(moment)
        daemon.send(signal.SIGTERM)
        code = await daemon.wait_exit(timeout=10)
    finally:
        await daemon.stop()
    assert code == 0, daemon.output
    assert "Traceback" not in daemon.output
    cluster = open_dir / "postgres" / "cluster"
    leftovers = [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if str(cluster) in process.cmdline(pid)
    ]
    assert leftovers == []
