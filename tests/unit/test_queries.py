"""The named-statement file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vodarchiver.db.queries import parse_queries, queries


def test_sections_are_split_by_name() -> None:
    """Each `-- name:` header starts a statement; comments inside are dropped."""
    parsed = parse_queries("-- name: one\n-- why\nSELECT 1;\n\n-- name: two\nSELECT %(x)s;\n")
    assert parsed == {"one": "SELECT 1;", "two": "SELECT %(x)s;"}


def test_duplicates_and_empty_sections_are_errors() -> None:
    """A name used twice or a header with no statement is rejected."""
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")
    with pytest.raises(ValueError, match="empty"):
        parse_queries("-- name: a\n-- nothing\n")


def test_every_query_the_code_names_exists_and_every_query_is_used() -> None:
    """q("...") calls in the package match the statements in queries.sql, both ways."""
    package = Path(__file__).resolve().parents[2] / "vodarchiver"
    used: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "q"
                    and node.args and isinstance(node.args[0], ast.Constant)):  # fmt: skip
                used.add(str(node.args[0].value))
    assert used == set(queries())
