"""The search-permission decision on real directories, with and without ACLs."""

from __future__ import annotations

import os
from pathlib import Path

from vodarchiver.db.acl import blocked_directories, can_search, grant_search

STRANGER = 54321  # a uid that owns nothing here
OTHER_GROUP = 54322


def test_plain_mode_bits(tmp_path: Path) -> None:
    """Without an ACL, other/group execute bits decide, by the directory's group."""
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    assert not can_search(d, STRANGER, {OTHER_GROUP})
    d.chmod(0o701)
    assert can_search(d, STRANGER, {OTHER_GROUP})
    d.chmod(0o710)
    assert can_search(d, STRANGER, {d.stat().st_gid})
    assert not can_search(d, STRANGER, {OTHER_GROUP})


def test_grant_search_lets_one_user_through(tmp_path: Path) -> None:
    """After grant_search the named user may pass, nobody else may, and the mode's other bits stay shut."""
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    grant_search(d, STRANGER)
    assert can_search(d, STRANGER, {OTHER_GROUP})
    assert not can_search(d, STRANGER + 1, {OTHER_GROUP})
    assert d.stat().st_mode & 0o007 == 0
    grant_search(d, STRANGER + 1)  # a second grant keeps the first
    assert can_search(d, STRANGER, set())
    assert can_search(d, STRANGER + 1, set())


def test_blocked_directories_lists_each_closed_ancestor(tmp_path: Path) -> None:
    """Every closed directory on the way is listed, top first; granting them unblocks the path."""
    outer = tmp_path / "outer"
    inner = outer / "mid" / "inner"
    inner.mkdir(parents=True)
    for d in (tmp_path, outer.parent):
        d.chmod(0o755)
    outer.chmod(0o700)
    inner.chmod(0o700)
    (outer / "mid").chmod(0o755)
    assert blocked_directories(inner, STRANGER, set())[-2:] == [outer, inner]
    for d in blocked_directories(inner, STRANGER, set()):
        grant_search(d, STRANGER)
    assert blocked_directories(inner, STRANGER, set()) == []


def test_the_owner_and_root_always_pass(tmp_path: Path) -> None:
    """The owning uid uses the owner bits; uid 0 passes everything."""
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    assert can_search(d, os.geteuid(), set())
    assert can_search(d, 0, set())
