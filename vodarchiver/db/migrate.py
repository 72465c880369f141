"""Schema migrations: plain SQL files in `migrations/`, applied in order, each exactly once.

Files are named `NNNN_description.sql`, append-only, and start with an intent comment. Each is
applied in its own transaction and recorded in `schema_migrations` with a checksum. The whole run
holds a session-level advisory lock, so replicas starting together apply the schema once: the
first applies, the others wait and then find nothing to do. Numbers may have gaps (they are
reserved per branch of work) and a lower number that lands later is applied then. An applied
migration whose file changed, or a database that knows migrations this code does not, stops
start-up with a clear message instead of guessing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from vodarchiver.db.queries import q
from vodarchiver.errors import DatabaseUnavailable, MigrationError
from vodarchiver.logs import get_logger

# An arbitrary constant: pg_advisory_lock keys are global to the database, so make ours distinct.
ADVISORY_LOCK_KEY = 0x76_6F_64_61_72_63  # "vodarc"
_LOCK_POLL_S = 0.1
_REPORT_EVERY_S = 5.0

_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file's text: an applied migration must never change."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """`migrations/` of a source checkout, or the copy packaged inside an installed wheel."""
    packaged = Path(__file__).resolve().parent.parent / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Every migration in `directory`, ordered by number; a number may be missing, not doubled.

    Numbers are reserved per branch of work, so one may land before a lower one: a gap is
    allowed, and a lower number that arrives later is applied then (see `plan`).
    """
    directory = directory or migrations_dir()
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for before, after in itertools.pairwise(found):
        if before.version == after.version:
            raise MigrationError(
                f"two migrations share the number {after.version:04d}: "
                f"{before.version:04d}_{before.name} and {after.version:04d}_{after.name}"
            )
    if not found:
        raise MigrationError(f"no migrations found in {directory}")
    return found


def plan(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> list[Migration]:
    """The migrations still to apply, in order of number, after checking the applied ones.

    A file numbered below the newest applied one (it landed after a higher number) is applied
    like any other: only a number the database knows and the files do not is refused.
    """
    known = {m.version: m for m in migrations}
    unknown = sorted(v for v in applied if v not in known)
    if unknown:
        raise MigrationError(
            f"the database has migration {unknown[-1]:04d}, which this vodarchiver does not know: "
            "it was migrated by a newer version; run that version or restore a backup"
        )
    for version, (name, checksum) in applied.items():
        if known[version].checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{name} was applied, but its file has changed since; "
                "migrations are append-only: restore the file and add a new migration instead"
            )
    return [m for m in migrations if m.version not in applied]


async def _take_lock(conn: psycopg.AsyncConnection[Any], timeout_s: float) -> None:
    """Take the migration lock, waiting up to `timeout_s` and saying who holds it meanwhile."""
    log = get_logger("migrate")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    next_report = loop.time()
    while True:
        cur = await conn.execute(q("migrations_try_lock"), {"key": ADVISORY_LOCK_KEY})
        row = await cur.fetchone()
        if row is not None and row[0]:
            return
        now = loop.time()
        if now >= deadline or now >= next_report:
            cur = await conn.execute(q("migrations_lock_holders"), {"key": ADVISORY_LOCK_KEY})
            holders = [int(r[0]) for r in await cur.fetchall()]
            if now >= deadline:
                raise MigrationError(
                    f"the migration lock is still held after {timeout_s:g}s (backend pids "
                    f"{holders}); another replica may be stuck migrating (MIGRATION_LOCK_TIMEOUT)"
                )
            log.info("migration_lock_waiting", holders=holders)
            next_report = now + _REPORT_EVERY_S
        await asyncio.sleep(_LOCK_POLL_S)


async def migrate(
    conninfo: str,
    migrations: list[Migration] | None = None,
    *,
    lock_timeout_s: float = 600.0,
) -> list[Migration]:
    """Apply pending migrations under the advisory lock; returns what was applied now."""
    migrations = migrations if migrations is not None else load_migrations()
    log = get_logger("migrate")
    try:
        connection = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc}") from exc
    async with connection as conn:
        locked = False
        try:
            await _take_lock(conn, lock_timeout_s)
            locked = True
            # Checked first so that a runtime role without CREATE on the schema (least
            # privilege: deploy/postgres/roles.sql) passes when the schema is up to date.
            cur = await conn.execute(q("migrations_table_exists"))
            exists = await cur.fetchone()
            if not (exists and exists[0]):
                await conn.execute(q("migrations_create_table"))
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(q("migrations_applied"))
            applied = {int(v): (str(n), str(c)) for v, n, c in await cur.fetchall()}
            pending = plan(migrations, applied)
            for migration in pending:
                async with conn.transaction():
                    # A migration file holds several statements, so it runs without parameters
                    # (psycopg then uses the simple query protocol).
                    await conn.execute(migration.sql)
                    await conn.execute(
                        q("migrations_record"),
                        {
                            "version": migration.version,
                            "name": migration.name,
                            "checksum": migration.checksum,
                        },
                    )
                log.info("migration_applied", version=migration.version, name=migration.name)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"database unavailable while migrating: {exc}") from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise MigrationError(
                f"applying migrations failed: {exc}; this role may only use the schema: run "
                "`vodarchiver migrate` as the migration owner first (see deploy/postgres/)"
            ) from exc
        except psycopg.Error as exc:
            raise MigrationError(f"applying migrations failed: {exc}") from exc
        finally:
            if locked and not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    await conn.execute(q("migrations_unlock"), {"key": ADVISORY_LOCK_KEY})
    log.info("schema_ready", applied_now=len(pending), version=migrations[-1].version)
    return pending
