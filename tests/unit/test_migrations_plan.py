"""Which migrations to apply, and when to refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from vodarchiver.db.migrate import Migration, load_migrations, plan
from vodarchiver.errors import MigrationError

M1 = Migration(1, "initial", "CREATE TABLE a (x int);")
M2 = Migration(2, "more", "CREATE TABLE b (x int);")


def test_nothing_applied_plans_everything() -> None:
    """A fresh database gets every migration in order."""
    assert plan([M1, M2], {}) == [M1, M2]


def test_applied_ones_are_skipped() -> None:
    """Migrations already recorded with the same checksum are not applied again."""
    assert plan([M1, M2], {1: ("initial", M1.checksum)}) == [M2]


def test_an_edited_migration_is_refused() -> None:
    """A recorded migration whose file changed stops start-up with an explanation."""
    with pytest.raises(MigrationError, match=r"0001_initial .*changed"):
        plan([M1, M2], {1: ("initial", "0" * 64)})


def test_a_newer_database_is_refused() -> None:
    """A database migrated by a newer vodarchiver is not touched."""
    with pytest.raises(MigrationError, match="0003"):
        plan([M1, M2], {1: ("initial", M1.checksum), 3: ("future", "x")})


def test_a_lower_number_that_lands_later_is_applied() -> None:
    """A database at 0003 without 0002 (reserved for work that landed later) gets 0002 then."""
    m3 = Migration(3, "third", "CREATE TABLE c (x int);")
    applied = {1: ("initial", M1.checksum), 3: ("third", m3.checksum)}
    assert plan([M1, M2, m3], applied) == [M2]


def test_files_may_leave_gaps_but_not_share_a_number(tmp_path: Path) -> None:
    """A gap in the numbering loads in order; two files with one number, or a bad name, do not."""
    (tmp_path / "0003_c.sql").write_text("SELECT 3;")
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    assert [(m.version, m.name) for m in load_migrations(tmp_path)] == [(1, "a"), (3, "c")]
    (tmp_path / "0003_d.sql").write_text("SELECT 4;")
    with pytest.raises(MigrationError, match="0003_c and 0003_d"):
        load_migrations(tmp_path)
    (tmp_path / "0003_d.sql").unlink()
    (tmp_path / "2_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_description"):
        load_migrations(tmp_path)


def test_shipped_migrations_load_and_open_with_an_intent_comment() -> None:
    """The real migrations are numbered upwards from 0001 and each starts by saying why it exists."""
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions[0] == 1
    assert versions == sorted(set(versions))
    for migration in migrations:
        assert migration.sql.lstrip().startswith("-- Intent:"), migration.name
