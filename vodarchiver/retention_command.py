"""`vodarchiver retention [--dry-run]`: what the retention rules remove now, and the space freed.

It opens the database as the daemon does. With DATABASE_URL it works next to a running daemon
(the removals take the same row locks as the sweeper, so the two never race); with the embedded
database only one process may open it, so stop the daemon first or read the daemon's log
(`retention_removed`). `--dry-run` lists and removes nothing.
"""

from __future__ import annotations

import sys
from typing import IO

from vodarchiver.app import build_retention
from vodarchiver.config import Settings
from vodarchiver.db.database import Database
from vodarchiver.errors import EXIT_OK


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


async def retention(settings: Settings, *, dry_run: bool, out: IO[str] | None = None) -> int:
    """List (and unless `dry_run`, carry out) the removals the rules ask for now."""
    out = out or sys.stdout
    db = await Database.open(settings)
    try:
        sweeper = build_retention(settings, db)
        removals, total = await sweeper.plan()
        if not dry_run:
            removals = await sweeper.sweep_once()
        verb = "would remove" if dry_run else "removed"
        for r in removals:
            out.write(f"{verb} {sweeper.path_of(r.dir)}  {_gib(r.dir.size)}  ({r.reason})\n")
        freed = sum(r.dir.size for r in removals)
        dirs = "directory" if len(removals) == 1 else "directories"
        tense = "would be freed" if dry_run else "freed"
        out.write(f"{len(removals)} VOD {dirs}, {_gib(freed)} of {_gib(total)} {tense}\n")
        return EXIT_OK
    finally:
        await db.aclose()
