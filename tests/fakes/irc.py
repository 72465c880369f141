"""A fake Twitch chat server on 127.0.0.1, over TCP (`irc://`) and WebSocket (`ws://`) at once.

It speaks Twitch's dialect as ../shared/EXTERNAL-APIS.md documents it: CAP ACK, the 001..376
welcome, `PASS oauth:` checked against `valid_tokens` (a refused token gets `NOTICE * :Login
authentication failed` and a close), anonymous `justinfan` logins, the JOIN echo with 353/366
and ROOMSTATE, PING/PONG. Knobs: `ignore_pings` (a dead link), `drop_clients()`, `reconnect()`
(RECONNECT, the old link kept open for `reconnect_grace_lines` more lines), `send()` to every
joined client, and `play()`: a scripted stream fed to the newest joined client that rewinds
`replay` lines on every new join (duplicates around a reconnect, as a test wants them). It
records every line received and every login; `reset()` puts every knob back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.server import Server, ServerConnection


@dataclass(eq=False)
class Client:
    """One connection to the fake."""

    number: int
    write: Callable[[str], asyncio.Future[None] | None]
    shut: Callable[[], None]
    nick: str | None = None
    token: str | None = None
    joined: str | None = None
    closed: bool = False
    sent_lines: int = 0

    async def send(self, lines: Sequence[str]) -> None:
        """Send lines (one write, several lines, as Twitch does)."""
        if self.closed or not lines:
            return
        self.sent_lines += len(lines)
        result = self.write("".join(f"{line}\r\n" for line in lines))
        if result is not None:
            try:
                await result
            except (websockets.ConnectionClosed, OSError):
                self.closed = True

    def close(self) -> None:
        """Drop the connection."""
        if not self.closed:
            self.closed = True
            self.shut()


@dataclass
class FakeIrc:
    """The fake server; start() it, point TWITCH_IRC_URL at `tcp_url` or `ws_url`."""

    valid_tokens: set[str] | None = None  # None: any token is accepted
    ignore_pings: bool = False
    replay: int = 0
    reconnect_grace_lines: int = 200
    received: list[str] = field(default_factory=list)
    logins: list[tuple[str, str | None]] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.changed = asyncio.Condition()
        self._tcp: asyncio.Server | None = None
        self._ws: Server | None = None
        self._count = 0
        self._closing: set[asyncio.Future[None]] = set()

    def reset(self) -> None:
        """Every knob back to its default; records cleared; connections dropped."""
        self.valid_tokens = None
        self.ignore_pings = False
        self.replay = 0
        self.reconnect_grace_lines = 200
        self.received.clear()
        self.logins.clear()
        self.drop_clients()

    # --- serving ----------------------------------------------------------------------------

    async def start(self) -> FakeIrc:
        """Listen on two free ports of 127.0.0.1."""
        self._tcp = await asyncio.start_server(self._serve_tcp, "127.0.0.1", 0)
        self._ws = await websockets.serve(self._serve_ws, "127.0.0.1", 0, compression=None,
                                          ping_interval=None, max_size=2**20)  # fmt: skip
        return self

    async def stop(self) -> None:
        """Close every connection and both listeners."""
        self.drop_clients()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
        if self._ws is not None:
            self._ws.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.wait_closed(), 2)

    @property
    def tcp_url(self) -> str:
        """irc://127.0.0.1:<port>."""
        assert self._tcp is not None
        return f"irc://127.0.0.1:{self._tcp.sockets[0].getsockname()[1]}"

    @property
    def ws_url(self) -> str:
        """ws://127.0.0.1:<port>."""
        assert self._ws is not None
        return f"ws://127.0.0.1:{next(iter(self._ws.sockets)).getsockname()[1]}"

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def write(text: str) -> asyncio.Future[None]:
            writer.write(text.encode())
            return asyncio.ensure_future(writer.drain())

        client = self._new_client(write, writer.close)
        try:
            while not client.closed:
                raw = await reader.readline()
                if not raw:
                    break
                await self._on_line(client, raw.decode(errors="replace").rstrip("\r\n"))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            await self._gone(client)
            writer.close()

    async def _serve_ws(self, ws: ServerConnection) -> None:
        def write(text: str) -> asyncio.Future[None]:
            return asyncio.ensure_future(ws.send(text))

        def shut() -> None:
            self._closing.add(asyncio.ensure_future(ws.close()))

        client = self._new_client(write, shut)
        try:
            async for frame in ws:
                text = frame if isinstance(frame, str) else frame.decode(errors="replace")
                for line in text.split("\r\n"):
                    if line:
                        await self._on_line(client, line)
        except websockets.ConnectionClosed:
            pass
        finally:
            await self._gone(client)

    def _new_client(
        self, write: Callable[[str], asyncio.Future[None]], shut: Callable[[], None]
    ) -> Client:
        self._count += 1
        client = Client(self._count, write, shut)
        self.clients.append(client)
        return client

    async def _gone(self, client: Client) -> None:
        client.closed = True
        async with self.changed:
            self.changed.notify_all()

    async def _on_line(self, client: Client, line: str) -> None:
        self.received.append(line)
        command, _, rest = line.partition(" ")
        if command == "CAP":
            await client.send([":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands"])
        elif command == "PASS":
            client.token = rest.removeprefix("oauth:")
        elif command == "NICK":
            await self._nick(client, rest.strip())
        elif command == "JOIN" and client.nick:
            channel = rest.strip()
            nick = client.nick
            await client.send([
                f":{nick}!{nick}@{nick}.tmi.twitch.tv JOIN {channel}",
                f":{nick}.tmi.twitch.tv 353 {nick} = {channel} :{nick}",
                f":{nick}.tmi.twitch.tv 366 {nick} {channel} :End of /NAMES list",
                f"@emote-only=0;followers-only=-1;r9k=0;room-id=1337;slow=0;subs-only=0 :tmi.twitch.tv ROOMSTATE {channel}",
            ])  # fmt: skip
            client.joined = channel[1:]
            async with self.changed:
                self.changed.notify_all()
        elif command == "PING" and not self.ignore_pings:
            await client.send([f":tmi.twitch.tv PONG tmi.twitch.tv {rest}"])

    async def _nick(self, client: Client, nick: str) -> None:
        anonymous = nick.startswith("justinfan") and client.token is None
        if (
            not anonymous
            and self.valid_tokens is not None
            and client.token not in self.valid_tokens
        ):
            self.logins.append((nick, None))
            await client.send([":tmi.twitch.tv NOTICE * :Login authentication failed"])
            client.close()
            return
        client.nick = nick
        self.logins.append((nick, client.token))
        await client.send(
            [
                f":tmi.twitch.tv {code} {nick} :-"
                for code in ("001", "002", "003", "004", "375", "372", "376")
            ]
        )

    # --- knobs ------------------------------------------------------------------------------

    def joined(self, channel: str) -> list[Client]:
        """Open clients that joined `channel`, oldest first."""
        return [c for c in self.clients if c.joined == channel and not c.closed]

    async def wait_joined(self, channel: str, count: int = 1, timeout: float = 30.0) -> Client:
        """Wait until `count` clients in all have joined `channel`; returns the newest open one."""
        async with asyncio.timeout(timeout), self.changed:
            while True:
                ever = [c for c in self.clients if c.joined == channel]
                if len(ever) >= count and self.joined(channel):
                    return self.joined(channel)[-1]
                await self.changed.wait()

    async def send(self, channel: str, lines: Sequence[str]) -> None:
        """Send lines to every open client joined to `channel`."""
        for client in self.joined(channel):
            await client.send(lines)

    def drop_clients(self) -> None:
        """Cut every connection at once (no goodbye)."""
        for client in self.clients:
            client.close()

    async def reconnect(self, channel: str) -> None:
        """Tell the clients of `channel` to reconnect (Twitch's RECONNECT)."""
        await self.send(channel, [":tmi.twitch.tv RECONNECT"])

    async def play(self, channel: str, lines: Sequence[str], *, chunk: int = 500,
                   drop_at: int | None = None, reconnect_at: int | None = None) -> None:  # fmt: skip
        """Feed `lines` to the newest joined client; on each new join rewind `replay` lines.

        `drop_at`: cut the link once that many lines were sent. `reconnect_at`: send RECONNECT
        there, go on feeding the old link until the new one joins, then close the old one after
        `reconnect_grace_lines` more lines.
        """
        pos = 0
        current = await self.wait_joined(channel)
        retiring: Client | None = None
        retire_at = 0
        while pos < len(lines):
            newest = self.joined(channel)[-1] if self.joined(channel) else None
            if newest is None:
                async with self.changed:
                    await self.changed.wait_for(lambda: bool(self.joined(channel)))
                continue
            if newest is not current:
                if retiring is None and not current.closed:
                    retiring, retire_at = current, pos + self.reconnect_grace_lines
                current = newest
                pos = max(0, pos - self.replay)
            end = min(len(lines), pos + chunk)
            for at in (drop_at, reconnect_at):
                if at is not None and pos < at < end:
                    end = at
            batch = lines[pos:end]
            await current.send(batch)
            if retiring is not None:
                await retiring.send(batch)
                if end >= retire_at:
                    retiring.close()
                    retiring = None
            pos = end
            if drop_at is not None and pos == drop_at:
                drop_at = None
                current.close()
            if reconnect_at is not None and pos == reconnect_at:
                reconnect_at = None
                await current.send([":tmi.twitch.tv RECONNECT"])
            await asyncio.sleep(0)  # let the server's other connections run between chunks
