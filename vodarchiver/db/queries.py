"""Loads the named statements of queries.sql once. Python never builds SQL by concatenation."""

from __future__ import annotations

import functools
import re
from importlib.resources import files
from typing import LiteralString

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a file of `-- name: x` sections into {name: statement}; duplicates are an error."""
    parts = _HEADER.split(text)
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        statement = "\n".join(
            line for line in body.strip().splitlines() if not line.lstrip().startswith("--")
        ).strip()
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        if not statement:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = statement  # a file we ship, not user input: literal for our purposes
    return queries


@functools.cache
def queries() -> dict[str, LiteralString]:
    """All named statements of vodarchiver/db/*.sql (queries.sql, archive.sql, ...).

    A concept with many statements keeps them in a file of its own so parallel work on the
    schema does not fight over one file; a name is still unique across all of them.
    """
    found: dict[str, LiteralString] = {}
    sql = sorted((f for f in files("vodarchiver.db").iterdir() if f.name.endswith(".sql")),
                 key=lambda f: f.name)  # fmt: skip
    for path in sql:
        for name, statement in parse_queries(path.read_text("utf-8")).items():
            if name in found:
                raise ValueError(f"query {name!r} is defined twice ({path.name})")
            found[name] = statement
    return found


def q(name: str) -> LiteralString:
    """One named statement; a KeyError names the missing query."""
    return queries()[name]
