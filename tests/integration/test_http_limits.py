"""The HTTP server's own limits (web.HttpServer, webconn): raw sockets against the real uvicorn
server on 127.0.0.1. A request head has HTTP_HEADER_TIMEOUT to arrive however its bytes
trickle in, idle connections make room under HTTP_MAX_CONNECTIONS, busy ones get 503, and a
request being answered is never cut."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from starlette.types import Receive, Scope, Send

from vodarchiver.values import HostPort
from vodarchiver.web import HttpServer, bind, bound_address

HEAD_TIMEOUT_S = 1.0
SLACK_S = 4.0  # a loaded two-core machine: generous, the point is "bounded", not "fast"
PARTIAL_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@dataclass
class App:
    """`/hold` answers once the test releases it (and says when it is being served); the rest
    answers `ok` at once."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: int = 0
    entered: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["path"] == "/hold":
            async with self.entered:
                self.holding += 1
                self.entered.notify_all()
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"ok"})

    async def wait_holding(self, n: int) -> None:
        """Until `n` /hold requests are being served."""
        async with self.entered:
            await self.entered.wait_for(lambda: self.holding >= n)


@dataclass
class Served:
    """The real server and its port."""

    server: HttpServer
    port: int
    app: App


@contextlib.asynccontextmanager
async def served(*, header_timeout_s: float, max_connections: int) -> AsyncIterator[Served]:
    """web.HttpServer on 127.0.0.1:<free port>, with these limits."""
    app = App()
    sock = bind(HostPort("127.0.0.1", 0))
    server = HttpServer(app, sock, graceful_s=1, header_timeout_s=header_timeout_s,
                        max_connections=max_connections)  # fmt: skip
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 5
        while not server.started:  # uvicorn has no "started" event to wait on
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            await asyncio.sleep(0.01)
        yield Served(server, bound_address(sock).port, app)
    finally:
        app.release.set()
        server.stop()
        await asyncio.wait_for(task, 10)


async def request(port: int, path: str = "/") -> tuple[int, bytes]:
    """One request on a new connection: its status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def closed_after(reader: asyncio.StreamReader, since: float, limit_s: float) -> float:
    """Seconds from `since` until the server closed this connection; infinity if it did not
    within `limit_s`."""
    try:
        async with asyncio.timeout(limit_s):
            while await reader.read(4096):
                pass
    except ConnectionError:
        pass
    except TimeoutError:
        return float("inf")
    return time.monotonic() - since


Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def trickle(clients: list[Client], stop: asyncio.Event) -> None:
    """A header line every 250 ms on each connection: bytes that must not extend the deadline."""
    while not stop.is_set():
        for reader, writer in clients:
            if not reader.at_eof() and not writer.is_closing():
                with contextlib.suppress(ConnectionError):
                    writer.write(b"X-Slow: 1\r\n")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


@contextlib.asynccontextmanager
async def trickling(clients: list[Client]) -> AsyncIterator[None]:
    """`trickle` on these connections for the duration of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(trickle(clients, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


@pytest.fixture(autouse=True)
def enough_descriptors() -> None:
    """A thousand client sockets in this process need more than a default 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        if hard != resource.RLIM_INFINITY and hard < 4096:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below 4096")
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))


async def test_a_thousand_slow_clients_are_dropped_and_never_hold_the_server() -> None:
    """1,000 clients that send nothing or trickle a head: never more than the cap open, each closed within the head timeout, and a normal request is answered meanwhile."""
    cap = 50
    async with served(header_timeout_s=HEAD_TIMEOUT_S, max_connections=cap) as s:
        clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        peak = 0
        for n in range(1000):
            reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
            if n % 2:
                writer.write(PARTIAL_HEAD)  # a head that never ends
            clients.append((reader, writer, time.monotonic()))
            peak = max(peak, s.server.open_connections)
        try:
            async with trickling([(r, w) for r, w, _ in clients[1::2]]):
                assert await request(s.port) == (200, b"ok")
                peak = max(peak, s.server.open_connections)
                waits = await asyncio.gather(
                    *(closed_after(r, t, HEAD_TIMEOUT_S + SLACK_S) for r, _, t in clients)
                )
        finally:
            for _, writer, _ in clients:
                writer.close()
        assert peak <= cap
        assert max(waits) < HEAD_TIMEOUT_S + SLACK_S  # every one was closed, in bounded time
        assert await request(s.port) == (200, b"ok")


async def test_idle_connections_make_room_oldest_first() -> None:
    """At the cap, a new connection closes the oldest idle one and is served at once."""
    async with served(header_timeout_s=60, max_connections=3) as s:
        idle = [await asyncio.open_connection("127.0.0.1", s.port) for _ in range(3)]
        assert await request(s.port) == (200, b"ok")
        oldest = await closed_after(idle[0][0], time.monotonic(), SLACK_S)
        assert oldest < SLACK_S
        assert s.server.open_connections <= 3
        for _, writer in idle:
            writer.close()


async def test_when_every_connection_is_busy_the_next_request_gets_503() -> None:
    """With HTTP_MAX_CONNECTIONS requests being answered, one more gets 503; once they finish, requests are answered again."""
    async with served(header_timeout_s=HEAD_TIMEOUT_S, max_connections=3) as s:
        held = [asyncio.create_task(request(s.port, "/hold")) for _ in range(3)]
        await s.app.wait_holding(3)
        assert (await request(s.port))[0] == 503
        s.app.release.set()
        assert await asyncio.gather(*held) == [(200, b"ok")] * 3
        assert await request(s.port) == (200, b"ok")


async def test_a_request_being_answered_is_never_cut_by_the_head_timeout() -> None:
    """A handler slower than HTTP_HEADER_TIMEOUT still answers; a silent client opened beside it is dropped meanwhile."""
    async with served(header_timeout_s=HEAD_TIMEOUT_S, max_connections=10) as s:
        held = asyncio.create_task(request(s.port, "/hold"))
        await s.app.wait_holding(1)
        silent, writer = await asyncio.open_connection("127.0.0.1", s.port)
        dropped = await closed_after(silent, time.monotonic(), HEAD_TIMEOUT_S + SLACK_S)
        assert HEAD_TIMEOUT_S * 0.9 <= dropped < HEAD_TIMEOUT_S + SLACK_S  # so the request's too
        writer.close()
        s.app.release.set()
        assert await held == (200, b"ok")


async def test_the_next_head_on_a_kept_alive_connection_has_the_same_deadline() -> None:
    """After a response, a client that trickles its next request's head is dropped within the timeout."""
    async with served(header_timeout_s=HEAD_TIMEOUT_S, max_connections=10) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"ok"
        since = time.monotonic()
        writer.write(PARTIAL_HEAD)
        try:
            async with trickling([(reader, writer)]):
                waited = await closed_after(reader, since, HEAD_TIMEOUT_S + SLACK_S)
        finally:
            writer.close()
        assert waited < HEAD_TIMEOUT_S + SLACK_S
