"""A notification target on 127.0.0.1: what Apprise's `json://` form posts, recorded.

Apprise posts `{"version", "title", "message", "type", ...}` as JSON to `json://host:port/path`.
Knobs: `fail_next(n)` answers 500 to the next n posts (they are counted as refused, not
received). Every accepted post is kept in `received`; `when(n)` is an event set once n posts
have been accepted, so tests wait on it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send


@dataclass
class FakeSink:
    """Accepts JSON posts on any path; fails on demand."""

    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    _fail: int = 0
    _waiters: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    def fail_next(self, n: int) -> None:
        """Answer 500 to the next `n` posts."""
        self._fail = n

    def fail_always(self, on: bool = True) -> None:
        """Answer 500 to every post until called with False."""
        self._fail = 10**9 if on else 0

    def when(self, n: int) -> asyncio.Event:
        """An event set once `n` posts in all have been accepted."""
        event = asyncio.Event()
        self._waiters.append((n, event))
        self._wake()
        return event

    def refusals(self, n: int) -> asyncio.Event:
        """An event set once `n` posts in all have been refused."""
        event = asyncio.Event()
        self._waiters.append((-n, event))
        self._wake()
        return event

    def titles(self) -> list[str]:
        """Titles of the accepted posts, in order."""
        return [str(r["body"].get("title")) for r in self.received]

    def reset(self) -> None:
        """Forget everything."""
        self.received.clear()
        self.refused = 0
        self._fail = 0

    def _wake(self) -> None:
        for n, event in self._waiters:
            if (n > 0 and len(self.received) >= n) or (n < 0 and self.refused >= -n):
                event.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self._fail > 0:
            self._fail -= 1
            self.refused += 1
            status, answer = 500, b"sink told to fail"
        else:
            try:
                parsed = json.loads(body)
            except json.JSONDecodeError:
                parsed = {"raw": body.decode("utf-8", "replace")}
            self.received.append({"path": scope["path"], "body": parsed})
            status, answer = 200, b"{}"
        self._wake()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})
