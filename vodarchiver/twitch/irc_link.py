"""One connection to Twitch chat, over WebSocket (`wss://`, `ws://`) or TCP (`ircs://`, `irc://`).

A `Link` sends lines and receives them in batches (everything that arrived together), so a busy
channel costs one await per read, not per line. Every failure of the transport (refused, reset,
closed, TLS, WebSocket handshake) becomes `ChatLinkLost`; nothing from `websockets` or `ssl`
leaves this module. An over-long line without an end is cut and handed on whole up to a bound,
for the parser to reject: it never grows the buffer without limit.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import ssl
from typing import Protocol

import websockets
from websockets.asyncio.client import ClientConnection

from vodarchiver.errors import ChatLinkLost
from vodarchiver.twitch.irc import MAX_LINE_BYTES
from vodarchiver.values import IrcEndpoint

READ_BYTES = 256 * 1024
# websockets logs every frame at debug level, PASS and its token included: never below info.
_WS_LOGGER = logging.getLogger("websockets.client.vodarchiver")
_WS_LOGGER.setLevel(logging.INFO)
MAX_PENDING = 4 * MAX_LINE_BYTES  # a "line" longer than this is handed on as it is, cut here


class Link(Protocol):
    """A connection that carries IRC lines."""

    async def send(self, line: str) -> None:
        """Send one line (CRLF added)."""

    async def receive(self) -> list[str]:
        """The next lines received; ChatLinkLost when the connection ended."""

    async def close(self) -> None:
        """Close; never raises."""


def split_lines(pending: str, data: str) -> tuple[list[str], str]:
    """Complete lines of `pending + data`, and the incomplete rest (bounded by MAX_PENDING)."""
    text = pending + data
    parts = text.split("\n")
    rest = parts.pop()
    lines = [p[:-1] if p.endswith("\r") else p for p in parts if p and p != "\r"]
    if len(rest) > MAX_PENDING:
        lines.append(rest)
        rest = ""
    return lines, rest


class TcpLink:
    """IRC over TCP, with TLS for ircs://."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._pending = ""
        # A multi-byte character may straddle two reads: decode the stream, not each read.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    async def send(self, line: str) -> None:
        try:
            self._writer.write(line.encode() + b"\r\n")
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:
            raise ChatLinkLost(f"send failed: {exc.__class__.__name__}") from exc

    async def receive(self) -> list[str]:
        while True:
            try:
                data = await self._reader.read(READ_BYTES)
            except (OSError, ssl.SSLError) as exc:
                raise ChatLinkLost(f"read failed: {exc.__class__.__name__}") from exc
            if not data:
                raise ChatLinkLost("closed by the server")
            lines, self._pending = split_lines(self._pending, self._decoder.decode(data))
            if lines:
                return lines

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)


class WebSocketLink:
    """IRC over WebSocket: one or more lines per text frame."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send(self, line: str) -> None:
        try:
            await self._ws.send(line + "\r\n")
        except (websockets.ConnectionClosed, OSError) as exc:
            raise ChatLinkLost(f"send failed: {exc.__class__.__name__}") from exc

    async def receive(self) -> list[str]:
        while True:
            try:
                frame = await self._ws.recv()
            except (websockets.ConnectionClosed, OSError) as exc:
                raise ChatLinkLost(f"closed: {exc.__class__.__name__}") from exc
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            lines, rest = split_lines("", text)
            if rest:
                lines.append(rest)  # a frame is whole: a last line without CRLF is still a line
            if lines:
                return lines

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), 2.0)


async def open_link(endpoint: IrcEndpoint, *, timeout_s: float = 10.0) -> Link:
    """Connect to the chat endpoint; ChatLinkLost when that fails or takes longer than timeout."""
    try:
        async with asyncio.timeout(timeout_s):
            if endpoint.websocket:
                ws = await websockets.connect(
                    endpoint.url,
                    max_size=2**20,
                    ping_interval=None,  # our own IRC keepalive watches the link end to end
                    compression=None,
                    open_timeout=timeout_s,
                    logger=_WS_LOGGER,
                )
                return WebSocketLink(ws)
            context = ssl.create_default_context() if endpoint.tls else None
            reader, writer = await asyncio.open_connection(
                endpoint.host, endpoint.port, ssl=context, limit=MAX_PENDING * 2
            )
            return TcpLink(reader, writer)
    except (OSError, TimeoutError, ssl.SSLError, websockets.InvalidHandshake,
            websockets.InvalidURI) as exc:  # fmt: skip
        raise ChatLinkLost(f"cannot connect to {endpoint.url}: {exc.__class__.__name__}") from exc
