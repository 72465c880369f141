"""What the benchmarks share: a PostgreSQL to run against and throwaway databases on it."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from vodarchiver.db.embedded import EmbeddedPostgres


def open_dir(prefix: str) -> Path:
    """A temporary directory the embedded server's user can pass through."""
    path = Path(tempfile.mkdtemp(prefix=f"vodarchiver-bench-{prefix}-"))
    path.chmod(0o711)
    return path


@asynccontextmanager
async def external_server() -> AsyncIterator[str]:
    """Admin connection string: DATABASE_URL, else an embedded server started for the run."""
    url = os.environ.get("DATABASE_URL")
    if url:
        print("PostgreSQL: DATABASE_URL")
        yield url
        return
    root = open_dir("pg")
    server = EmbeddedPostgres(root, durable=False)
    try:
        url = await server.start()
        print("PostgreSQL: an embedded server started for the benchmark (DATABASE_URL unset)")
        yield url
    finally:
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def admin_database(admin_url: str, prefix: str) -> tuple[str, str]:
    """A new empty database: (name, connection string)."""
    name = f"vodarchiver_bench_{prefix}_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, psycopg.conninfo.make_conninfo(admin_url, dbname=name)


async def drop_db(admin_url: str, name: str) -> None:
    """Drop a bench database, whoever is still connected."""
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
