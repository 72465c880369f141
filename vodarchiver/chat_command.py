"""`vodarchiver chat export VOD_ID --format json|ndjson|srt|ass`: a VOD's chat to a file or stdout.

It opens the database as the daemon does (DATABASE_URL, or the embedded server, which only one
process may run at a time: with the embedded database and the daemon running, use
`GET /vods/{id}/chat` or the console's download links instead) and streams the chat page by
page, so memory stays flat however long the chat.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from typing import IO

from vodarchiver.chat_export import ASS_HEADER, FORMATS, message_json, to_ass, to_ndjson, to_srt
from vodarchiver.config import Settings
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.database import Database
from vodarchiver.errors import EXIT_FAILED, EXIT_OK
from vodarchiver.logs import get_logger

PAGE = 5_000


async def export_chat(settings: Settings, vod_id: str, fmt: str, out: IO[str] | None = None) -> int:
    """Write the chat of `vod_id` in `fmt`; exit status 1 when the VOD is unknown."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    out = out or sys.stdout
    db = await Database.open(settings)
    try:
        if await db.store.vod_get(vod_id) is None:
            get_logger("chat").error("chat_export_unknown_vod", vod_id=vod_id)
            return EXIT_FAILED
        await write_chat(ChatStore(db.pool), vod_id, fmt, out)
        return EXIT_OK
    finally:
        await db.aclose()


async def write_chat(chat: ChatStore, vod_id: str, fmt: str, out: IO[str]) -> None:
    """Stream a VOD's chat in `fmt`, a page at a time."""
    async for chunk in chat_chunks(chat, vod_id, fmt):
        out.write(chunk)
    out.flush()


async def chat_chunks(chat: ChatStore, vod_id: str, fmt: str) -> AsyncIterator[str]:
    """A VOD's chat in `fmt` as text chunks, a page read at a time (the CLI and the console)."""
    after: tuple[int, str] | None = None
    written = 0
    yield {"json": "[", "ass": ASS_HEADER}.get(fmt, "")
    while True:
        rows = await chat.page(vod_id, from_ms=-(2**62), to_ms=2**62, after=after, limit=PAGE)
        if fmt == "json":
            parts = []
            for row in rows:
                parts.append(("," if written else "") + "\n" + json.dumps(message_json(row)))
                written += 1
            yield "".join(parts)
        elif fmt == "ndjson":
            yield "".join(to_ndjson(rows))
        elif fmt == "srt":
            cues = list(to_srt(rows, first_index=written + 1))
            written += len(cues)
            yield "".join(cues)
        else:
            yield "".join(to_ass(rows))
        if len(rows) < PAGE:
            break
        after = (int(rows[-1]["offset_ms"]), str(rows[-1]["msg_id"]))
    yield "\n]\n" if fmt == "json" else ""
