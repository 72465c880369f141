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
    """All named statements of vodarchiver/db/queries.sql."""
    return parse_queries(files("vodarchiver.db").joinpath("queries.sql").read_text("utf-8"))


def q(name: str) -> LiteralString:
    """One named statement; a KeyError names the missing query."""
    return queries()[name]
