"""Shared fixtures: a real PostgreSQL, a template database migrated once, a fresh database per test.

The server is TEST_DATABASE_URL or DATABASE_URL when set (CI and these machines run one at
127.0.0.1:5432), else an embedded server of our own started for the session. Each test that asks
for `db_url` gets `CREATE DATABASE ... TEMPLATE` of the migrated template, dropped afterwards, so
commits and locks behave exactly as in production.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from vodarchiver import logs
from vodarchiver.db.embedded import EmbeddedPostgres
from vodarchiver.db.migrate import migrate

RUN_ID = secrets.token_hex(3)


def make_open_dir(prefix: str) -> Path:
    """A fresh temporary directory that an embedded server's user can pass through when we are root.

    pytest's own tmp_path lives under a 0700 directory; the daemon would then have to grant the
    server user access to it (which it can do), but tests should not depend on that path.
    """
    path = Path(tempfile.mkdtemp(prefix=f"vodarchiver-{prefix}-"))
    path.chmod(0o711)
    return path


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A temporary DATA_DIR usable by the embedded server, removed after the test."""
    path = make_open_dir("data")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def pg_admin_url() -> AsyncIterator[str]:
    """Connection string of a PostgreSQL where tests may create and drop databases."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    root = make_open_dir("pg")
    server = EmbeddedPostgres(root, durable=False)
    conninfo = await server.start()
    try:
        yield conninfo
    finally:
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


def with_dbname(conninfo: str, dbname: str) -> str:
    """The same server, another database."""
    return psycopg.conninfo.make_conninfo(conninfo, dbname=dbname)


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE name [TEMPLATE template]; returns its connection string."""
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        if template:
            await conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_dbname(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    """DROP DATABASE ... WITH (FORCE): also ends connections a killed daemon left behind."""
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# Least privilege (tests/acceptance/test_least_privilege.py): a template database migrated by the
# owner role of deploy/postgres/roles.sql, and the runtime role's login for every test database,
# so the tests that run with these set prove the daemon's work needs no more than that role has.
TEMPLATE_DB = os.environ.get("TEST_TEMPLATE_DB")
RUNTIME_LOGIN = (os.environ.get("TEST_DB_USER"), os.environ.get("TEST_DB_PASSWORD"))


@pytest.fixture(scope="session")
async def template_db(pg_admin_url: str) -> AsyncIterator[str]:
    """Name of a database built once per run by the real migrations."""
    if TEMPLATE_DB:
        # Migrated by its owner, who also installed the state-change recorder: without it the
        # lifecycle check below would pass vacuously.
        url = with_dbname(pg_admin_url, TEMPLATE_DB)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            cur = await conn.execute("SELECT to_regclass('_test_state_changes') IS NOT NULL")
            assert await cur.fetchone() == (True,), f"{TEMPLATE_DB} lacks the recorder"
        yield TEMPLATE_DB
        return
    name = f"vodarchiver_test_{RUN_ID}_template"
    url = await create_database(pg_admin_url, name)
    await migrate(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(RECORD_STATE_CHANGES)
    yield name
    await drop_database(pg_admin_url, name)


# Every state change any test makes is recorded, and checked against the lifecycle's table when
# the test's databases are dropped: no code path may write a transition the table does not allow.
# Not `UPDATE OF state`: a trigger (0007's runbook reprocess) may move the state of an UPDATE that
# does not name the column, and that change must be recorded too.
RECORD_STATE_CHANGES = """
CREATE TABLE _test_state_changes (from_state text, to_state text, vod text);
CREATE FUNCTION _test_record_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO _test_state_changes VALUES (OLD.state, NEW.state, NEW.twitch_vod_id);
    RETURN NULL;
END $$;
CREATE TRIGGER _test_record_state AFTER UPDATE ON vods FOR EACH ROW
WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION _test_record_state();
"""


async def disallowed_transitions(url: str) -> list[tuple[str, str, str]]:
    """The state changes recorded in a test database that the lifecycle's table does not allow."""
    from vodarchiver.lifecycle import VodState, is_allowed  # noqa: PLC0415 - test helper only

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT from_state, to_state, vod FROM _test_state_changes")
        rows = await cur.fetchall()
    return [(a, b, v) for a, b, v in rows if not is_allowed(VodState(a), VodState(b))]


async def counts_astray(url: str) -> list[tuple[str, int, int]]:
    """The states whose count kept by migration 0012's triggers is not the number of rows."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT coalesce(k.vod_state, r.state), coalesce(k.total, 0), coalesce(r.n, 0) "
            "FROM vod_state_counts() k FULL JOIN "
            "(SELECT state, count(*) AS n FROM vods GROUP BY state) r ON r.state = k.vod_state "
            "WHERE coalesce(k.total, 0) <> coalesce(r.n, 0)"
        )
        return [(str(s), int(kept), int(real)) for s, kept, real in await cur.fetchall()]


class DatabaseFactory:
    """Makes fresh databases for one test and drops them afterwards."""

    def __init__(self, admin_url: str, template: str) -> None:
        self.admin_url = admin_url
        self.template = template
        self.created: list[str] = []

    async def migrated(self) -> str:
        """A database with the current schema (a copy of the template)."""
        url = await self._new(self.template)
        user, password = RUNTIME_LOGIN
        if user:
            return psycopg.conninfo.make_conninfo(url, user=user, password=password or "")
        return url

    async def empty(self) -> str:
        """A database with nothing in it, not even schema_migrations."""
        return await self._new(None)

    async def _new(self, template: str | None) -> str:
        name = f"vodarchiver_test_{RUN_ID}_{len(self.created)}_{secrets.token_hex(3)}"
        url = await create_database(self.admin_url, name, template)
        self.created.append(name)
        return url

    async def drop_all(self) -> None:
        bad: list[tuple[str, str, str]] = []
        astray: list[tuple[str, int, int]] = []
        for name in self.created:
            with contextlib.suppress(psycopg.Error):  # an empty database has no such table
                bad += await disallowed_transitions(with_dbname(self.admin_url, name))
            with contextlib.suppress(psycopg.Error):  # nor this function (or an older schema)
                astray += await counts_astray(with_dbname(self.admin_url, name))
            await drop_database(self.admin_url, name)
        assert not bad, f"state changes outside the lifecycle's table: {bad}"
        # Every test's writes, whichever path made them, left the counts by state exact.
        assert not astray, f"counts by state (kept, real) that differ from the rows: {astray}"


@pytest.fixture
async def databases(pg_admin_url: str, template_db: str) -> AsyncIterator[DatabaseFactory]:
    """A factory of fresh databases, all dropped after the test."""
    factory = DatabaseFactory(pg_admin_url, template_db)
    yield factory
    await factory.drop_all()


@pytest.fixture
async def db_url(databases: DatabaseFactory) -> str:
    """A fresh, migrated database for this test."""
    return await databases.migrated()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log line written during the test, as JSON; plain text logging restored after."""
    out = io.StringIO()
    logs.configure("debug", "json", stream=out)
    yield out
    logs.configure("info", "text")


def logged(out: io.StringIO, event: str) -> list[dict[str, Any]]:
    """The JSON log events with this name, in order."""
    lines = (json.loads(line) for line in out.getvalue().splitlines())
    return [line for line in lines if line.get("event") == event]


class ManualClock:
    """A clock that stands still until the test moves it: pass `clock` where `now()` is injected."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)
        self.start = self.now

    def __call__(self) -> datetime:
        return self.now

    def at(self, **since_start: float) -> None:
        """Set the time to the start plus a timedelta (`clock.at(minutes=15)`)."""
        self.now = self.start + timedelta(**since_start)
