"""`vodarchiver backup` and `vodarchiver restore`: the database dumped, DATA_DIR's files listed.

A backup is a directory holding `database.dump` (pg_dump's custom format, without owners or
grants, so it restores under whichever role runs the restore) and `manifest.json`: the dump's size
and sha256, the server and pg_dump versions, and every file under DATA_DIR (path, size, sha256)
except the embedded server's own cluster, which the dump already holds. The video files are not
copied (they can be tens of gigabytes; copy DATA_DIR with rsync or a snapshot next to the
backup): the manifest is what proves a copy complete. A restore checks the dump's checksum and the
files now in DATA_DIR against the manifest before it touches the database, and loads the dump
only into a database without tables, in one transaction.

Works on the embedded server (started for the command, or reached while the daemon runs it) and
on DATABASE_URL alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from vodarchiver import __version__, process
from vodarchiver.config import Settings
from vodarchiver.db.embedded import EmbeddedPostgres
from vodarchiver.db.pgclient import find_tool
from vodarchiver.db.queries import q
from vodarchiver.errors import BackupError, StartupError
from vodarchiver.logs import get_logger

MANIFEST = "manifest.json"
DUMP = "database.dump"
FORMAT = 1
_CHUNK = 1 << 20
_PG_TIMEOUT_S = 6 * 3600.0  # a dump of a large chat history may take a while; never forever


@dataclass(frozen=True)
class FileEntry:
    """One file under DATA_DIR, as the manifest records it."""

    path: str  # relative to DATA_DIR, with `/`
    size: int
    sha256: str


def sha256_of(path: Path) -> str:
    """The file's sha256, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan(data_dir: Path, skip: tuple[Path, ...] = ()) -> list[FileEntry]:
    """Every regular file under `data_dir`, except the embedded cluster and `skip`, sorted."""
    root = data_dir.resolve()
    excluded = {root / "postgres", *(p.resolve() for p in skip)}
    entries: list[FileEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if here / d not in excluded)
        for name in sorted(filenames):
            path = here / name
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            entries.append(FileEntry(rel, path.stat().st_size, sha256_of(path)))
    return sorted(entries, key=lambda e: e.path)


def compare(expected: list[FileEntry], data_dir: Path) -> list[str]:
    """What differs between the manifest's files and those now under `data_dir` (empty: none)."""
    problems: list[str] = []
    for entry in expected:
        path = data_dir / entry.path
        if not path.is_file():
            problems.append(f"missing: {entry.path}")
        elif path.stat().st_size != entry.size:
            problems.append(f"size differs: {entry.path} ({path.stat().st_size} != {entry.size})")
        elif sha256_of(path) != entry.sha256:
            problems.append(f"checksum differs: {entry.path}")
    return problems


def libpq_env(conninfo: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, environment carrying it): argv is visible in `ps`."""
    params = conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    env = dict(process.MINIMAL_ENV)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None}), env


@contextlib.asynccontextmanager
async def database(settings: Settings, *, may_attach: bool) -> AsyncIterator[str]:
    """The conninfo of the database to back up or restore into (the owner's, when embedded).

    The embedded server is started for the command; when the daemon already runs it (its lock is
    held), `backup` reaches the running server instead, and `restore` refuses.
    """
    if settings.database_url is not None:
        yield settings.database_url.conninfo.get()
        return
    embedded = EmbeddedPostgres(settings.data_dir, port=settings.embedded_pg_port)
    try:
        conninfo = await embedded.start()
    except StartupError:
        port = embedded.running_port()
        if not may_attach or port is None:
            raise
        yield embedded.attach(port)
        return
    try:
        yield conninfo
    finally:
        await embedded.stop()


async def _server(conninfo: str) -> tuple[int, str, int]:
    """(server major, server version text, number of tables in the public schema)."""
    try:
        async with await psycopg.AsyncConnection.connect(conninfo, connect_timeout=10) as conn:
            cur = await conn.execute(q("backup_server_info"))
            row = await cur.fetchone()
    except psycopg.Error as exc:
        raise BackupError(f"cannot reach the database: {str(exc).strip()[:300]}") from None
    if row is None:  # an aggregate-free SELECT of settings always yields a row
        raise BackupError("the database did not say its version")
    return int(row[0]) // 10000, str(row[1]), int(row[2])


async def _run_pg(argv: list[str], env: dict[str, str], what: str) -> str:
    done = await process.run(argv, env=env, timeout_s=_PG_TIMEOUT_S)
    if done.returncode != 0:
        raise BackupError(f"{what} failed (exit {done.returncode}): {done.output.strip()[-1500:]}")
    return done.output


def _prepare_output(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BackupError(f"{out_dir} is not empty; give each backup a new directory")
    out_dir.mkdir(parents=True, exist_ok=True)


async def backup(settings: Settings, out_dir: Path) -> dict[str, Any]:
    """Write `out_dir`/database.dump and manifest.json; returns the manifest."""
    log = get_logger("backup")
    await asyncio.to_thread(_prepare_output, out_dir)
    dump = out_dir / DUMP
    async with database(settings, may_attach=True) as conninfo:
        major, server_version, _ = await _server(conninfo)
        pg_dump = await find_tool("pg_dump", major)
        target, env = libpq_env(conninfo)
        await _run_pg(
            [str(pg_dump), "--format=custom", "--no-owner", "--no-privileges",
             f"--file={dump}", f"--dbname={target}"],
            env, "pg_dump",
        )  # fmt: skip
        version = await _run_pg([str(pg_dump), "--version"], env, "pg_dump --version")
    files = await asyncio.to_thread(scan, settings.data_dir, (out_dir,))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "vodarchiver_version": __version__,
        "database": {
            "file": DUMP,
            "size": dump.stat().st_size,
            "sha256": await asyncio.to_thread(sha256_of, dump),
            "server_version": server_version,
            "pg_dump": version.strip(),
        },
        "data_dir": str(settings.data_dir.resolve()),
        "files": [asdict(f) for f in files],
    }
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out_dir / MANIFEST)
    log.info("backup_written", directory=str(out_dir), files=len(files),
             dump_bytes=manifest["database"]["size"])  # fmt: skip
    return manifest


def read_manifest(backup_dir: Path) -> dict[str, Any]:
    """The manifest, checked for its format and the dump's size and checksum."""
    try:
        manifest = json.loads((backup_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{backup_dir / MANIFEST} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{backup_dir / MANIFEST} is not a vodarchiver backup manifest")
    db = manifest["database"]
    dump = backup_dir / str(db["file"])
    if not dump.is_file() or dump.stat().st_size != db["size"] or sha256_of(dump) != db["sha256"]:
        raise BackupError(f"{dump} is missing or does not match the manifest's checksum")
    return manifest


async def restore(settings: Settings, backup_dir: Path, *, ignore_files: bool = False) -> list[str]:
    """Load a backup into an empty database; returns the file problems that were ignored."""
    log = get_logger("backup")
    manifest = await asyncio.to_thread(read_manifest, backup_dir)
    entries = [FileEntry(**f) for f in manifest["files"]]
    problems = await asyncio.to_thread(compare, entries, settings.data_dir)
    if problems and not ignore_files:
        listed = "; ".join(problems[:20]) + ("; ..." if len(problems) > 20 else "")
        raise BackupError(
            f"DATA_DIR {settings.data_dir} does not hold the files of this backup ({listed}); "
            "copy them back first, or pass --ignore-files to restore the database anyway"
        )
    async with database(settings, may_attach=False) as conninfo:
        major, _, tables = await _server(conninfo)
        if tables:
            raise BackupError(
                f"the target database already has {tables} tables; restore only into an empty "
                "database (create a new one, or drop and re-create this one)"
            )
        pg_restore = await find_tool("pg_restore", major)
        target, env = libpq_env(conninfo)
        await _run_pg(
            [str(pg_restore), "--exit-on-error", "--single-transaction", "--no-owner",
             "--no-privileges", f"--dbname={target}", str(backup_dir / DUMP)],
            env, "pg_restore",
        )  # fmt: skip
    log.info("backup_restored", directory=str(backup_dir), files=len(entries),
             file_problems=len(problems))  # fmt: skip
    return problems
