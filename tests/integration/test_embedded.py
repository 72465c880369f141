"""The embedded PostgreSQL: first start, restart on its data, orphans, one owner per DATA_DIR."""

from __future__ import annotations

import asyncio
import grp
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import make_open_dir
from vodarchiver import process
from vodarchiver.db import acl
from vodarchiver.db.embedded import EmbeddedPostgres, choose_run_as
from vodarchiver.errors import EmbeddedPostgresError, StartupError


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A DATA_DIR the server's user can reach."""
    path = make_open_dir("embedded")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def postmasters_of(cluster: Path) -> list[int]:
    """Pids of every running postmaster serving this cluster."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = process.cmdline(int(entry))
            if argv and Path(argv[0]).name == "postgres" and str(cluster) in argv:
                found.append(int(entry))
    return found


async def test_first_start_creates_and_later_starts_reuse_the_cluster(data_dir: Path) -> None:
    """initdb happens once; data written before a clean stop is there after the next start."""
    server = EmbeddedPostgres(data_dir, durable=False)
    conninfo = await server.start()
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    await server.stop()
    assert postmasters_of(server.cluster) == []
    assert (server.password_file.stat().st_mode & 0o777) == 0o600

    again = EmbeddedPostgres(data_dir, durable=False)
    conninfo = await again.start()
    try:
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            assert await (await conn.execute("SELECT x FROM kept")).fetchone() == (42,)
    finally:
        await again.stop()


async def test_an_orphaned_server_is_stopped_and_replaced_without_loss(data_dir: Path) -> None:
    """A server whose owner died without stopping it is shut down cleanly and restarted, never duplicated."""
    script = textwrap.dedent(f"""
        import asyncio, os, sys
        from pathlib import Path
        import psycopg
        from vodarchiver.db.embedded import EmbeddedPostgres
        async def main():
            server = EmbeddedPostgres(Path({str(data_dir)!r}), durable=False, die_with_parent=False)
            conninfo = await server.start()
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
            print(server.pid, flush=True)
            os._exit(0)  # die without stopping the server, as a SIGKILLed daemon would
        asyncio.run(main())
    """)
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await owner.communicate()
    orphan = int(out.decode().split()[-1])
    assert process.pid_alive(orphan)

    server = EmbeddedPostgres(data_dir, durable=False)
    conninfo = await server.start()
    try:
        assert not process.pid_alive(orphan)
        assert postmasters_of(server.cluster) == [server.pid]
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            assert await (await conn.execute("SELECT x FROM kept")).fetchone() == (7,)
    finally:
        await server.stop()


async def test_a_stale_pid_file_is_not_mistaken_for_a_server(data_dir: Path) -> None:
    """A postmaster.pid naming a pid now used by another process, even one called postgres, is not signalled."""
    server = EmbeddedPostgres(data_dir, durable=False)
    await server.start()
    await server.stop()
    impostor = (
        data_dir / "bin" / "postgres"
    )  # like another server's process: named postgres, not ours
    impostor.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", impostor)
    sleeper = await asyncio.create_subprocess_exec(str(impostor), "30")
    try:
        (server.cluster / "postmaster.pid").write_text(f"{sleeper.pid}\n{server.cluster}\n")
        again = EmbeddedPostgres(data_dir, durable=False)
        await again.start()
        await again.stop()
        assert sleeper.returncode is None  # not ours to signal
    finally:
        sleeper.kill()
        await sleeper.wait()


async def test_one_owner_per_data_dir(data_dir: Path) -> None:
    """A second server on the same DATA_DIR is refused, naming DATA_DIR."""
    first = EmbeddedPostgres(data_dir, durable=False)
    await first.start()
    try:
        with pytest.raises(StartupError) as caught:
            await EmbeddedPostgres(data_dir, durable=False).start()
        assert caught.value.variable == "DATA_DIR"
    finally:
        await first.stop()


async def test_a_cluster_from_another_major_version_is_refused(data_dir: Path) -> None:
    """Data made by another PostgreSQL major version is not opened; the message says what to do."""
    server = EmbeddedPostgres(data_dir, durable=False)
    await server.start()
    await server.stop()
    (server.cluster / "PG_VERSION").write_text("11\n")
    with pytest.raises(EmbeddedPostgresError, match=r"PostgreSQL 11.*pg_upgrade"):
        await EmbeddedPostgres(data_dir, durable=False).start()
    assert postmasters_of(server.cluster) == []


async def test_a_missing_password_file_is_explained(data_dir: Path) -> None:
    """Without its password file the cluster cannot be opened, and the error says how to recover."""
    server = EmbeddedPostgres(data_dir, durable=False)
    await server.start()
    await server.stop()
    server.password_file.unlink()
    with pytest.raises(
        EmbeddedPostgresError,
        match=r"password is missing, so the embedded database cannot be opened",
    ):
        await EmbeddedPostgres(data_dir, durable=False).start()


async def test_a_taken_fixed_port_names_embedded_pg_port(data_dir: Path) -> None:
    """EMBEDDED_PG_PORT already in use is a StartupError naming that variable."""
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        with pytest.raises(StartupError) as caught:
            await EmbeddedPostgres(data_dir, port=port, durable=False).start()
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert caught.value.variable == "EMBEDDED_PG_PORT"


async def test_the_server_gets_a_minimal_environment(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's environment (which may hold secrets) is not handed to the server process."""
    monkeypatch.setenv("VODARCHIVER_TEST_SECRET_MARKER", "leak-me-not")
    server = EmbeddedPostgres(data_dir, durable=False)
    await server.start()
    try:
        environ = await asyncio.to_thread(Path(f"/proc/{server.pid}/environ").read_bytes)
    finally:
        await server.stop()
    assert b"leak-me-not" not in environ
    assert b"LC_ALL=C" in environ


@pytest.mark.skipif(os.geteuid() != 0, reason="only root has to pick another user for PostgreSQL")
async def test_as_root_the_server_runs_as_an_unprivileged_user(data_dir: Path) -> None:
    """Run as root, the server's processes and files belong to an unprivileged user."""
    server = EmbeddedPostgres(data_dir, durable=False)
    await server.start()
    try:
        assert server.pid is not None
        assert os.stat(f"/proc/{server.pid}").st_uid != 0
        assert server.cluster.stat().st_uid != 0
        run_as = choose_run_as(server.cluster)
        assert run_as is not None
        assert run_as.uid == server.cluster.stat().st_uid
    finally:
        await server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
async def test_as_root_a_private_checkout_is_opened_to_the_server_user_only(data_dir: Path) -> None:
    """A DATA_DIR under a 0700 directory, or a 0710 one whose group the server user is in, works; only that user gains access."""
    private = data_dir / "private"
    private.mkdir(mode=0o700)
    grouped = data_dir / "grouped"
    grouped.mkdir()
    run_as = choose_run_as(grouped / "nothing-yet")
    assert run_as is not None
    member_of = [g.gr_gid for g in grp.getgrall() if run_as.name in g.gr_mem]
    if member_of:  # supplementary groups do not count: the server runs with its primary group only
        os.chown(grouped, 0, member_of[0])
        grouped.chmod(0o710)
    for parent in (private, grouped):
        server = EmbeddedPostgres(parent / "data", durable=False)
        await server.start()
        try:
            assert parent.stat().st_mode & 0o007 == 0  # nothing granted to other users
            assert acl.can_search(parent, run_as.uid, {run_as.gid})
        finally:
            await server.stop()
    assert not acl.can_search(private, 65534 if run_as.uid != 65534 else 1, {65534})
