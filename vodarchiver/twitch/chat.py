"""The chat recorder of one channel: log in, join, hand every chat event on, never lose the link.

- Login: `CAP REQ :twitch.tv/tags twitch.tv/commands`, `PASS oauth:<token>` and `NICK <login>`,
  or anonymously as `justinfan<digits>` without a token; then `JOIN #<channel>`. The token is
  asked for again at every connection (it may have been rotated) and never logged.
- Keepalive: Twitch's `PING` is answered; after `KEEPALIVE_S` of silence we send our own PING,
  and a link silent for `DEAD_AFTER_S` in all is given up (so a dead link is noticed within 60 s).
- `RECONNECT`: a new connection is opened and joined while the old one keeps being read, and only
  then is the old one closed. Lines both deliver are the same messages: the sink drops repeats.
- Other losses: reconnect with full-jitter backoff. A refused login is reported (log, `status`,
  metric) and retried slowly.
- Lines: each goes through `irc.decode`, which never raises; an unusable line is counted and
  logged, truncated, and the recorder goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vodarchiver.errors import ChatLinkLost, ChatLoginFailed
from vodarchiver.logs import get_logger, register_secrets
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.backoff import backoff_s
from vodarchiver.twitch.irc import ChatEvent, IrcMessage, decode, excerpt
from vodarchiver.twitch.irc_link import Link, open_link
from vodarchiver.values import IrcEndpoint, Secret

KEEPALIVE_S = 30.0
DEAD_AFTER_S = 60.0
LOGIN_TIMEOUT_S = 15.0
_LOGIN_FAILED = ("Login authentication failed", "Improperly formatted auth", "Invalid NICK")
_REJECT_LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class Credentials:
    """Who we log in as: a login with its token, or anonymous (token None)."""

    login: str
    token: Secret | None


@dataclass
class RecorderStatus:
    """What `/readyz` and `/status` say about one recorder."""

    connected: bool = False
    login_failed: str | None = None
    reconnections: int = 0
    rejected_lines: int = 0


@dataclass(frozen=True)
class Timing:
    """The recorder's clocks and waits; tests shorten them."""

    keepalive_s: float = KEEPALIVE_S
    dead_after_s: float = DEAD_AFTER_S
    login_timeout_s: float = LOGIN_TIMEOUT_S
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    login_retry_s: float = 300.0


def anonymous_login(rng: random.Random) -> str:
    """Twitch's read-only login: `justinfan` and digits."""
    return f"justinfan{rng.randint(10_000, 99_999)}"


class ChatRecorder:
    """Records one channel's chat into `sink` until cancelled."""

    def __init__(
        self,
        channel: str,
        *,
        endpoint: IrcEndpoint,
        credentials: Callable[[], Awaitable[Credentials]],
        sink: Callable[[ChatEvent, str | None], None],
        metrics: Metrics,
        timing: Timing | None = None,
        connect: Callable[[IrcEndpoint], Awaitable[Link]] = open_link,
        rng: random.Random | None = None,
    ) -> None:
        self.channel = channel
        self.stream_id: str | None = None  # the placeholder its events go to, set by the stage
        self.status = RecorderStatus()
        self._endpoint = endpoint
        self._credentials = credentials
        self._sink = sink
        self._metrics = metrics
        self._timing = timing or Timing()
        self._connect_link = connect
        self._rng = rng or random.Random()  # noqa: S311 - jitter and justinfan digits
        self._log = get_logger("chat").bind(channel=channel)
        self._last_reject_log = 0.0
        self._unlogged_rejects = 0

    async def run(self) -> None:
        """Connect, record, reconnect, forever (until cancelled)."""
        failures = 0
        link: Link | None = None
        try:
            while True:
                if link is None:
                    link = await self._connect_until_joined(failures)
                    failures = 0
                reconnect = asyncio.Event()
                pump = asyncio.create_task(self._pump(link, reconnect))
                told = asyncio.create_task(reconnect.wait())
                try:
                    await asyncio.wait({pump, told}, return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    # Stopped: neither helper task may outlive the recorder.
                    told.cancel()
                    await _stop(pump)
                    raise
                if told.done():
                    # RECONNECT: the new link first, the old one read meanwhile, then dropped.
                    self._log.info("chat_reconnect_requested")
                    try:
                        new = await self._connect_until_joined(0)
                    finally:
                        told.cancel()
                        await _stop(pump)
                        await link.close()
                    link = new
                    self._count_reconnection("reconnect_requested")
                    continue
                told.cancel()
                reason = pump.result()
                await link.close()
                link = None
                failures += 1
                self._set_connected(False)
                self._count_reconnection(reason)
                await self._wait_backoff(failures, reason)
        finally:
            self._set_connected(False)
            if link is not None:
                await link.close()

    # --- connecting -------------------------------------------------------------------------

    async def _connect_until_joined(self, failures: int) -> Link:
        while True:
            try:
                return await self._login()
            except ChatLoginFailed as exc:
                self.status.login_failed = str(exc)
                self._metrics.chat_login_failures.labels(self.channel).inc()
                self._log.error("chat_login_failed", reason=str(exc),
                                retry_in_s=self._timing.login_retry_s)  # fmt: skip
                await asyncio.sleep(self._timing.login_retry_s)
            except ChatLinkLost as exc:
                failures += 1
                await self._wait_backoff(failures, str(exc))

    async def _login(self) -> Link:
        creds = await self._credentials()
        if creds.token is not None:
            # Whatever its source (settings, the database), a token is scrubbed from every log.
            register_secrets([creds.token.get()])
        link = await self._connect_link(self._endpoint)
        try:
            async with asyncio.timeout(self._timing.login_timeout_s):
                await link.send("CAP REQ :twitch.tv/tags twitch.tv/commands")
                if creds.token is not None and creds.token.get():
                    await link.send(f"PASS oauth:{creds.token.get()}")
                    nick = creds.login
                else:
                    nick = anonymous_login(self._rng)
                await link.send(f"NICK {nick}")
                await link.send(f"JOIN #{self.channel}")
                await self._until_joined(link, nick)
        except TimeoutError:
            await link.close()
            raise ChatLinkLost("no welcome and join within the login timeout") from None
        except BaseException:
            await link.close()
            raise
        self.status.login_failed = None
        self._set_connected(True)
        self._log.info("chat_joined", nick=nick, anonymous=creds.token is None)
        return link

    async def _until_joined(self, link: Link, nick: str) -> None:
        welcomed = False
        while True:
            for line in await link.receive():
                message = self._on_line(line)
                if message is None:
                    continue
                if message.command == "PING":
                    await link.send(f"PONG :{message.trailing}")
                elif message.command == "NOTICE" and any(
                    text in message.trailing for text in _LOGIN_FAILED
                ):
                    raise ChatLoginFailed(message.trailing[:200])
                elif message.command == "001":
                    welcomed = True
                elif welcomed and (
                    message.command == "ROOMSTATE"
                    or (message.command == "JOIN" and message.nick == nick)
                ):
                    return

    # --- reading ----------------------------------------------------------------------------

    async def _pump(self, link: Link, reconnect: asyncio.Event) -> str:
        """Read until the link is lost; returns why. Sets `reconnect` on Twitch's RECONNECT."""
        pinged = False
        while True:
            timing = self._timing
            wait = timing.dead_after_s - timing.keepalive_s if pinged else timing.keepalive_s
            try:
                async with asyncio.timeout(wait):
                    lines = await link.receive()
            except TimeoutError:
                if pinged:
                    return "keepalive: no answer to our PING"
                pinged = True
                try:
                    await link.send("PING :vodarchiver")
                except ChatLinkLost as exc:
                    return str(exc)
                continue
            except ChatLinkLost as exc:
                return str(exc)
            pinged = False
            for line in lines:
                message = self._on_line(line)
                if message is None:
                    continue
                command = message.command
                if command == "PING":
                    with contextlib.suppress(ChatLinkLost):
                        await link.send(f"PONG :{message.trailing}")
                elif command == "RECONNECT":
                    reconnect.set()
                elif command == "NOTICE":
                    self._log.info("chat_notice", msg_id=message.tag("msg-id"),
                                   text=message.trailing[:200])  # fmt: skip

    def _on_line(self, line: str) -> IrcMessage | None:
        """Decode one line, hand its event to the sink; never raises for any line."""
        decoded = decode(line, received_ms=int(time.time() * 1000))
        if decoded.rejected is not None:
            self._reject(line, decoded.rejected)
            return None
        if decoded.event is not None:
            self._sink(decoded.event, self.stream_id)
        return decoded.message

    def _reject(self, line: str, reason: str) -> None:
        self.status.rejected_lines += 1
        self._metrics.chat_lines_rejected.inc()
        now = time.monotonic()
        # A flood of garbage must not flood the log: the first of every period, with a count.
        if now - self._last_reject_log >= _REJECT_LOG_EVERY_S:
            self._log.warning("chat_line_rejected", reason=reason, line=excerpt(line),
                              also_rejected=self._unlogged_rejects)  # fmt: skip
            self._last_reject_log = now
            self._unlogged_rejects = 0
        else:
            self._unlogged_rejects += 1

    # --- bookkeeping ------------------------------------------------------------------------

    def _set_connected(self, connected: bool) -> None:
        self.status.connected = connected
        self._metrics.chat_connected.labels(self.channel).set(1 if connected else 0)

    def _count_reconnection(self, reason: str) -> None:
        self.status.reconnections += 1
        self._metrics.chat_reconnections.inc()
        self._log.warning("chat_link_lost", reason=reason)

    async def _wait_backoff(self, failures: int, reason: str) -> None:
        delay = backoff_s(failures, base_s=self._timing.backoff_base_s,
                          cap_s=self._timing.backoff_cap_s, draw=self._rng.random())  # fmt: skip
        self._log.info("chat_reconnecting", reason=reason, retry_in_ms=round(delay * 1000))
        await asyncio.sleep(delay)


async def _stop(task: asyncio.Task[str]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
