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


def test_numbers_may_have_gaps_but_never_repeat(tmp_path: Path) -> None:
    """A gap (a number reserved for a change not landed yet) loads; a repeated number or a badly named file is an error."""
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    assert [m.version for m in load_migrations(tmp_path)] == [1, 3]
    (tmp_path / "0003_d.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="two migrations have version 0003"):
        load_migrations(tmp_path)
    (tmp_path / "0003_d.sql").unlink()
    (tmp_path / "2_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_description"):
        load_migrations(tmp_path)


def test_a_lower_number_landing_later_is_applied() -> None:
    """A database that has 1 and 3 applies 2 when it arrives, and refuses nothing."""
    m3 = Migration(3, "third", "CREATE TABLE c (x int);")
    applied = {1: ("initial", M1.checksum), 3: ("third", m3.checksum)}
    assert plan([M1, M2, m3], applied) == [M2]


def test_shipped_migrations_load_and_open_with_an_intent_comment() -> None:
    """The real migrations are ordered and each starts by saying why it exists."""
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(set(versions))
    assert versions[0] == 1
    for migration in migrations:
        assert migration.sql.lstrip().startswith("-- Intent:"), migration.name
