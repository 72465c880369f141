"""Opens the daemon's database: the embedded server or DATABASE_URL, migrated, behind a pool.

At start-up an external PostgreSQL gets DATABASE_CONNECT_TIMEOUT to accept a connection (compose
may start both together); a wrong password or a missing database fails at once. Either way the
failure is a StartupError naming DATABASE_URL, with the address but never the password.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool

from vodarchiver.config import Settings
from vodarchiver.db.embedded import EmbeddedPostgres
from vodarchiver.db.migrate import migrate
from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.uploads import UploadStore
from vodarchiver.errors import StartupError
from vodarchiver.logs import get_logger

# Failures that waiting will not cure: bad password or role, no such database. libpq gives no
# SQLSTATE for a failed connection, so its (English, server-side) message is matched too.
_PERMANENT_SQLSTATES = {"28P01", "28000", "3D000"}
_PERMANENT_MESSAGES = re.compile(
    r"password authentication failed|authentication failed|no password supplied"
    r"|(database|role) \"[^\"]*\" does not exist|no pg_hba.conf entry"
)


def is_permanent(exc: psycopg.OperationalError) -> bool:
    """Whether a connection failure is a refusal (credentials, database) rather than an outage."""
    return exc.sqlstate in _PERMANENT_SQLSTATES or bool(_PERMANENT_MESSAGES.search(str(exc)))


def describe_connect_error(exc: psycopg.OperationalError) -> str:
    """libpq's message on one line, without the repetition libpq adds for every address tried."""
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return text[:300] or exc.__class__.__name__


async def wait_for_connection(conninfo: str, where: str, timeout_s: float) -> None:
    """Return once PostgreSQL accepts a connection; StartupError(DATABASE_URL) otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = 0.1
    log = get_logger("database")
    while True:
        remaining = deadline - loop.time()
        try:
            conn = await psycopg.AsyncConnection.connect(
                conninfo, connect_timeout=max(1, round(remaining))
            )
        except psycopg.OperationalError as exc:
            reason = describe_connect_error(exc)
            if is_permanent(exc):
                raise StartupError("DATABASE_URL", f"{where} refused us: {reason}") from None
            if loop.time() + delay >= deadline:
                raise StartupError(
                    "DATABASE_URL", f"cannot connect to {where} within {timeout_s:g}s: {reason}"
                ) from None
            log.info("database_waiting", target=where, reason=reason, retry_in_ms=delay * 1000)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        else:
            await conn.close()
            return


@dataclass
class Database:
    """The pool, the store over it, the liveness probe, and the embedded server if there is one."""

    pool: psycopg_pool.AsyncConnectionPool[Any]
    store: UploadStore
    probe: DatabaseProbe
    target: str
    embedded: EmbeddedPostgres | None = None
    conninfo: str = ""  # the runtime role's, for connections outside the pool (LISTEN)

    @classmethod
    async def open(cls, settings: Settings) -> Database:
        """Start or reach PostgreSQL, apply migrations, open the pool."""
        embedded: EmbeddedPostgres | None = None
        pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        if settings.database_url is None:
            embedded = EmbeddedPostgres(settings.data_dir, port=settings.embedded_pg_port)
            # Migrations run as the superuser that owns the schema; the daemon works as the
            # non-superuser runtime role (least privilege, as with deploy/postgres/roles.sql).
            owner_conninfo = await embedded.start()
            conninfo = embedded.runtime_conninfo
            target = f"embedded PostgreSQL on 127.0.0.1:{embedded.port}"
        else:
            # With an external server the same login migrates and works; compose runs
            # `vodarchiver migrate` as the owner role first, so the runtime role finds no work.
            owner_conninfo = conninfo = settings.database_url.conninfo.get()
            target = settings.database_url.redacted
        try:
            if embedded is None:
                await wait_for_connection(conninfo, target, settings.database_connect_timeout_s)
            await migrate(owner_conninfo, lock_timeout_s=settings.migration_lock_timeout_s)
            pool = psycopg_pool.AsyncConnectionPool(
                conninfo,
                min_size=settings.database_pool_min_size,
                max_size=settings.database_pool_max_size,
                open=False,
                name="vodarchiver",
                kwargs={"application_name": "vodarchiver", "connect_timeout": 5},
                check=psycopg_pool.AsyncConnectionPool.check_connection,
                # Short, so a pool that lost PostgreSQL retries new connections within seconds of
                # its return rather than after a long exponential backoff.
                reconnect_timeout=10.0,
            )
            await pool.open(wait=settings.database_pool_min_size > 0, timeout=30.0)
        except BaseException:
            if pool is not None:  # cancelled while opening: its workers would keep reconnecting
                await pool.close(timeout=1.0)
            if embedded is not None:
                await embedded.stop()
            raise
        get_logger("database").info("database_ready", target=target)
        return cls(
            pool=pool,
            store=UploadStore(pool),
            probe=DatabaseProbe(conninfo),
            target=target,
            embedded=embedded,
            conninfo=conninfo,
        )

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Close the probe and the pool, then stop the embedded server, within `timeout_s`."""
        await self.probe.aclose()
        await self.pool.close(timeout=min(1.0, timeout_s / 4))
        if self.embedded is not None:
            await self.embedded.stop(timeout_s=max(0.5, timeout_s * 3 / 4))
