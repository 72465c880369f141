"""`vodarchiver notify test`: one test message to every NOTIFY_URLS target, and which failed why.

Nothing is read from or written to the database: this checks the URLs themselves. A target is
named by its position, its scheme and a digest (`#2 discord:3fa1c2...`), never by its URL, which
may hold a token.
"""

from __future__ import annotations

import sys
from typing import IO

from vodarchiver.config import Settings
from vodarchiver.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from vodarchiver.notify.sender import Targets, send_test


async def notify_test(settings: Settings, out: IO[str] | None = None) -> int:
    """Send the test message; exit 0 when every target took it, 1 if one failed, 2 if none set."""
    out = out or sys.stdout
    raw = settings.notify_urls.get() if settings.notify_urls is not None else ""
    targets = Targets.from_setting(raw)
    if not targets.targets:
        print("vodarchiver: NOTIFY_URLS is not set: nothing to test", file=sys.stderr)
        return EXIT_CONFIG
    results = await send_test(targets)
    for label, error in results:
        out.write(f"{label}: {'ok' if error is None else 'FAILED: ' + error}\n")
    failed = sum(1 for _, error in results if error is not None)
    out.write(f"{len(results) - failed} of {len(results)} target(s) took the test message\n")
    return EXIT_FAILED if failed else EXIT_OK
