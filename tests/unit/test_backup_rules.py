"""The pure parts of backups: which pg_dump fits a server, and the DATA_DIR manifest."""

from __future__ import annotations

from pathlib import Path

from vodarchiver.backup import compare, libpq_env, scan
from vodarchiver.db.pgclient import choose, parse_major

BIN15, BIN17, BIN18 = Path("/usr/lib/postgresql/15/bin"), Path("/x/17/bin"), Path("/wheel/bin")


def test_the_oldest_client_not_older_than_the_server_is_chosen() -> None:
    """Same major first, else the next newer; an older pg_dump (which refuses) never."""
    found = {BIN18: 18, BIN15: 15, BIN17: 17}
    assert choose(15, found) == BIN15
    assert choose(16, found) == BIN17
    assert choose(18, found) == BIN18
    assert choose(19, found) is None


def test_versions_are_read_from_the_tools_banner() -> None:
    """`pg_dump --version` lines of Debian and upstream builds give their major."""
    assert parse_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)") == 15
    assert parse_major("pg_restore (PostgreSQL) 18.1") == 18
    assert parse_major("command not found") is None


def test_the_password_leaves_argv_for_the_environment() -> None:
    """pg_dump gets the connection without its password (argv is public); PGPASSWORD carries it."""
    target, env = libpq_env("host=db port=5432 user=u dbname=v password='p@ss:w/rd?#'")
    assert "p@ss" not in target
    assert "host=db" in target
    assert env["PGPASSWORD"] == "p@ss:w/rd?#"


def test_the_manifest_lists_files_but_not_the_embedded_cluster(tmp_path: Path) -> None:
    """Every file under DATA_DIR with size and sha256, except postgres/ and the backup itself."""
    (tmp_path / "alice/1").mkdir(parents=True)
    (tmp_path / "alice/1/1.mp4").write_bytes(b"video")
    (tmp_path / "postgres/cluster").mkdir(parents=True)
    (tmp_path / "postgres/cluster/PG_VERSION").write_text("18")
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups/x").write_text("old backup")
    entries = scan(tmp_path, skip=(tmp_path / "backups",))
    assert [(e.path, e.size) for e in entries] == [("alice/1/1.mp4", 5)]
    assert entries[0].sha256 == "0cab1c9617404faf2b24e221e189ca5945813e14d3f766345b09ca13bbe28ffc"
    assert compare(entries, tmp_path) == []
    (tmp_path / "alice/1/1.mp4").write_bytes(b"vide0")
    assert compare(entries, tmp_path) == ["checksum differs: alice/1/1.mp4"]
    (tmp_path / "alice/1/1.mp4").write_bytes(b"vid")
    assert compare(entries, tmp_path) == ["size differs: alice/1/1.mp4 (3 != 5)"]
    (tmp_path / "alice/1/1.mp4").unlink()
    assert compare(entries, tmp_path) == ["missing: alice/1/1.mp4"]
