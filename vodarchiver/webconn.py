"""The HTTP server's connections: a deadline for each request's head, and a cap on their number.

uvicorn (h11) has neither: a connection that sends nothing, or trickles a header a byte at a
time, is held for ever (its keep-alive timer only starts after a first response, and any byte
cancels it), so a thousand such clients held a thousand sockets and file descriptors. Its
`limit_concurrency` answers 503 once a request *arrives* at the limit, so idle connections
still count against it and crowd out real requests.

`GuardedH11Protocol` is uvicorn's own H11Protocol with two additions:
- **HTTP_HEADER_TIMEOUT**: from the moment a connection opens, and again when each response
  ends (keep-alive), the client has this long to send a complete request head. Bytes that
  arrive meanwhile do not extend it. When it passes with no request being served, the
  connection is closed. A request being served (a slow handler, a long download, a
  server-sent-events stream) is never cut by it.
- **HTTP_MAX_CONNECTIONS**: when a new connection arrives and that many are open, idle ones
  (no request being served: waiting for a head, or kept alive) are closed, oldest first, to
  make room. When every connection is busy, uvicorn's `limit_concurrency` (set to one more)
  answers the next request 503.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """uvicorn's H11Protocol with a header-read deadline and idle eviction (module docstring)."""

    header_timeout_s: float = 10.0
    max_connections: int = 200

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened_at = time.monotonic()
        self._head_deadline: asyncio.TimerHandle | None = None

    @classmethod
    def configured(cls, *, header_timeout_s: float, max_connections: int) -> type[H11Protocol]:
        """A protocol class with these limits, for `uvicorn.Config(http=...)`."""
        attrs = {"header_timeout_s": header_timeout_s, "max_connections": max_connections}
        return type("GuardedH11Protocol", (cls,), attrs)

    @property
    def idle(self) -> bool:
        """No request is being served: waiting for a head, or kept alive between requests."""
        return self.cycle is None or self.cycle.response_complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._make_room()
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request's head has the same deadline

    def _make_room(self) -> None:
        """Close the oldest idle connections while the cap is reached (before counting us)."""
        open_now = [c for c in self.connections if isinstance(c, GuardedH11Protocol)]
        if len(open_now) < self.max_connections:
            return
        idle = sorted((c for c in open_now if c.idle), key=lambda c: c.opened_at)
        for victim in idle[: len(open_now) - self.max_connections + 1]:
            victim.drop()

    def drop(self) -> None:
        """Close this connection now (it serves no request) and stop counting it."""
        self._disarm_head_deadline()
        self.connections.discard(self)
        if not self.transport.is_closing():
            self.transport.close()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_overdue)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self.idle and not self.transport.is_closing():
            self.drop()
