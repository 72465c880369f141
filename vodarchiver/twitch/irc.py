"""Twitch chat lines: the IRCv3 parser and the chat events we store. Pure: no I/O.

`parse_line` splits one line into tags, prefix, command and parameters (RFC 1459 with IRCv3
message tags, unescaped as the spec says; the tag text as received is kept too, and is what we
store). `chat_event` turns the commands we record (PRIVMSG,
USERNOTICE, CLEARCHAT, CLEARMSG) into a `ChatEvent`; the rest (PING, RECONNECT, NOTICE, numerics)
are the connection's business. A line we cannot use raises `IrcLineRejected` with a short reason:
the recorder counts and logs it and goes on, so no input line can stop it (fuzzed by hypothesis).

Twitch's conventions (../shared/EXTERNAL-APIS.md): `id` is unique per message and is our key;
`tmi-sent-ts` is the server's time in Unix milliseconds; `emotes` ranges index Unicode code points
(Python's own string indices) of the message as shown, that is without the `/me` wrapper.

Speed matters here (issue 6 asks for 20,000 messages/s on two cores, shared with PostgreSQL):
the usual chat line is matched by one regular expression and its tags split by another, both in
C; anything else takes the general path, which gives the same result for the lines both accept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vodarchiver.errors import IrcLineRejected

# Twitch documents lines of up to about 8 KB with tags; twice that is certainly not chat.
MAX_LINE_BYTES = 16 * 1024
RECORDED = frozenset({"PRIVMSG", "USERNOTICE", "CLEARCHAT", "CLEARMSG"})

_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_COMMAND = re.compile(r"^(?:[A-Za-z]+|\d{3})$", re.ASCII)
_ACTION_PREFIX = "\x01ACTION "
_EMOTE_RANGE = re.compile(r"^(\d{1,6})-(\d{1,6})$", re.ASCII)
# The usual chat line: `@tags :prefix COMMAND #channel :text`, single spaces. Whatever it accepts
# the general path would parse the same way.
_USUAL = re.compile(r"@([^ ]*) :([^ ]+) ([A-Za-z]+) (#[^ ]+) :(.*)", re.DOTALL)


class IrcMessage:
    """One IRC line: IRCv3 tags (unescaped), prefix, command (upper case) and parameters.

    The tags are parsed when first asked for; `tag()` reads the few an event needs without
    parsing the others (a chat line has about 17, an event reads 7). Treat it as immutable.
    """

    __slots__ = ("_some", "_tags", "command", "params", "prefix", "raw_tags")

    def __init__(
        self,
        tags: dict[str, str] | None,
        prefix: str | None,
        command: str,
        params: tuple[str, ...],
        raw_tags: str = "",
    ) -> None:
        self._tags = tags  # None: parsed from raw_tags when first asked for
        self._some: dict[str, str] | None = None  # the tags events read, when parsed alone
        self.prefix = prefix
        self.command = command
        self.params = params
        self.raw_tags = raw_tags  # the tags as received, still escaped: what is stored

    def __repr__(self) -> str:
        return (f"IrcMessage(tags={self.tags!r}, prefix={self.prefix!r}, "
                f"command={self.command!r}, params={self.params!r})")  # fmt: skip

    @property
    def tags(self) -> dict[str, str]:
        """Every tag, unescaped; a later duplicate key wins."""
        if self._tags is None:
            self._tags = parse_tags(self.raw_tags)
        return self._tags

    def tag(self, key: str) -> str | None:
        """One tag's value (unescaped), None when absent: the same as `tags.get(key)`.

        The tags an event reads are found by one regular expression (in C) without splitting
        the others.
        """
        if self._tags is None and key in _EVENT_KEYS:
            if self._some is None:
                self._some = _event_tags(self.raw_tags)
            return self._some.get(key)
        return self.tags.get(key)

    @property
    def nick(self) -> str | None:
        """The sender's nick from `nick!user@host`, or None for a server prefix."""
        if self.prefix is None or "!" not in self.prefix:
            return None
        return self.prefix.split("!", 1)[0]

    @property
    def trailing(self) -> str:
        """The last parameter (the message text of PRIVMSG), or ''."""
        return self.params[-1] if self.params else ""


_EVENT_KEYS = frozenset({"id", "tmi-sent-ts", "user-id", "display-name", "color", "bits",
                         "reply-parent-msg-id", "login", "target-msg-id", "target-user-id",
                         "room-id", "msg-id"})  # fmt: skip
# An item whose key is one of those, in `;raw;`: `;key=value` or a bare `;key` (value ''). A
# value holds no raw `;`, so a match always starts at an item and covers it whole.
_EVENT_TAG = re.compile(
    r";(" + "|".join(re.escape(k) for k in sorted(_EVENT_KEYS)) + r")(?:=([^;]*))?(?=;)"
)


def _event_tags(raw: str) -> dict[str, str]:
    """The `_EVENT_KEYS` tags of `raw`, as parse_tags would read them (a later duplicate wins)."""
    some = dict(_EVENT_TAG.findall(f";{raw};"))
    if "\\" in raw:
        for key, value in some.items():
            if "\\" in value:
                some[key] = unescape_tag(value)
    return some


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """Something we store: a message, a USERNOTICE, a CLEARCHAT, or a CLEARMSG deletion."""

    msg_id: str  # Twitch's id, or a deterministic one for CLEARCHAT (replays must collide)
    kind: str  # PRIVMSG, USERNOTICE, CLEARCHAT, CLEARMSG
    channel: str
    sent_at_ms: int
    user_id: str | None
    login: str | None
    display_name: str | None
    text: str
    action: bool  # /me
    bits: int | None
    color: str | None
    reply_parent_id: str | None
    target_msg_id: str | None  # CLEARMSG: the message deleted
    raw_tags: str  # the IRCv3 tags as received (escaped); stored as they are

    @property
    def tags(self) -> dict[str, str]:
        """The tags, parsed and unescaped (on demand: storing needs only `raw_tags`)."""
        return parse_tags(self.raw_tags)


@dataclass(frozen=True, slots=True)
class Emote:
    """One use of an emote: its id and the code-point range [start, end] it covers."""

    id: str
    start: int
    end: int


def unescape_tag(value: str) -> str:
    """An IRCv3 tag value unescaped (`\\:` is `;`, `\\s` a space ...); other `\\x` is x."""
    if "\\" not in value:
        return value
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            if i + 1 < n:
                nxt = value[i + 1]
                out.append(_ESCAPES.get(nxt, nxt))
            i += 2  # a lone trailing backslash is dropped, as the spec says
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_tags(raw: str) -> dict[str, str]:
    """`a=1;b=;c` -> {'a': '1', 'b': '', 'c': ''}; a later duplicate key wins."""
    try:
        # The usual tags, every item `key=value`: one comprehension, dict() in C.
        tags = dict([item.split("=", 1) for item in raw.split(";")])
    except ValueError:  # an item without `=` (or an empty one): item by item
        tags = {}
        for item in raw.split(";"):
            key, _, value = item.partition("=")
            tags[key] = value
    tags.pop("", None)  # an item without a key (`;;`, `=x`) is skipped
    if "\\" in raw:
        for key, value in tags.items():
            if "\\" in value:
                tags[key] = unescape_tag(value)
    return tags


def parse_line(line: str) -> IrcMessage:
    """One IRC line (with or without its CRLF) -> IrcMessage; IrcLineRejected with the reason."""
    line = line.rstrip("\r\n")
    _check_text(line)
    usual = _USUAL.fullmatch(line)
    if usual is not None:
        raw, prefix, command, channel, text = usual.groups()
        return IrcMessage(None, prefix, command.upper(), (channel, text), raw)
    return _parse_general(line)


def _check_text(line: str) -> None:
    if line.isascii():
        size = len(line)
    else:
        try:
            size = len(line.encode("utf-8"))
        except UnicodeEncodeError:
            raise IrcLineRejected("line is not valid text (lone surrogates)") from None
    if size > MAX_LINE_BYTES:
        raise IrcLineRejected(f"line of {size} bytes is over {MAX_LINE_BYTES}")
    if "\x00" in line or "\r" in line or "\n" in line:
        raise IrcLineRejected("line contains NUL, CR or LF")


def _parse_general(line: str) -> IrcMessage:
    rest = line
    raw = ""
    if rest.startswith("@"):
        raw, sep, rest = rest[1:].partition(" ")
        if not sep:
            raise IrcLineRejected("tags without a command")
        rest = rest.lstrip(" ")
    prefix = None
    if rest.startswith(":"):
        prefix, sep, rest = rest[1:].partition(" ")
        if not sep or not prefix:
            raise IrcLineRejected("prefix without a command")
        rest = rest.lstrip(" ")
    command, _, rest = rest.partition(" ")
    if not _COMMAND.match(command):
        raise IrcLineRejected(f"no valid command ({command[:20]!r})")
    params: list[str] = []
    while rest:
        rest = rest.lstrip(" ")
        if not rest:
            break
        if rest.startswith(":"):
            params.append(rest[1:])
            break
        param, _, rest = rest.partition(" ")
        params.append(param)
    return IrcMessage(None if raw else {}, prefix, command.upper(), tuple(params), raw)


def _int_tag(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def _channel(msg: IrcMessage) -> str:
    if not msg.params or not msg.params[0].startswith("#") or len(msg.params[0]) < 2:
        raise IrcLineRejected(f"{msg.command} without a #channel")
    return msg.params[0][1:].lower()


def chat_event(msg: IrcMessage, *, received_ms: int) -> ChatEvent | None:
    """The ChatEvent a recorded command carries, None for other commands.

    `received_ms` stands in for `tmi-sent-ts` when Twitch left it out. A PRIVMSG or USERNOTICE
    without an `id`, or a CLEARMSG without `target-msg-id`, cannot be de-duplicated or applied:
    it is rejected.
    """
    if msg.command not in RECORDED:
        return None
    channel = _channel(msg)
    tag = msg.tag
    sent_ms = _int_tag(tag("tmi-sent-ts")) or received_ms
    if msg.command == "CLEARCHAT":
        return _clearchat(msg, channel, sent_ms)
    if msg.command == "CLEARMSG":
        return _clearmsg(msg, channel, sent_ms)
    msg_id = tag("id")
    if not msg_id:
        raise IrcLineRejected(f"{msg.command} without an id tag")
    text = msg.trailing if len(msg.params) > 1 else ""
    action = text.startswith(_ACTION_PREFIX) and text.endswith("\x01")
    if action:
        text = text[len(_ACTION_PREFIX) : -1]
    login = msg.nick if msg.command == "PRIVMSG" else tag("login")
    return ChatEvent(msg_id, msg.command, channel, sent_ms, tag("user-id") or None,
                     login or None, tag("display-name") or None, text, action,
                     _int_tag(tag("bits")), tag("color") or None,
                     tag("reply-parent-msg-id") or None, None, msg.raw_tags)  # fmt: skip


def _clearchat(msg: IrcMessage, channel: str, sent_ms: int) -> ChatEvent:
    # No id from Twitch: one made of what identifies it, so a replay after a reconnect collides.
    target = msg.tag("target-user-id") or ""
    room = msg.tag("room-id")
    msg_id = f"clearchat:{channel if room is None else room}:{sent_ms}:{target}"
    login = msg.params[1] if len(msg.params) > 1 else None
    return ChatEvent(msg_id, "CLEARCHAT", channel, sent_ms, target or None, login, None, "",
                     False, None, None, None, None, msg.raw_tags)  # fmt: skip


def _clearmsg(msg: IrcMessage, channel: str, sent_ms: int) -> ChatEvent:
    target_id = msg.tag("target-msg-id")
    if not target_id:
        raise IrcLineRejected("CLEARMSG without target-msg-id")
    text = msg.trailing if len(msg.params) > 1 else ""
    return ChatEvent(f"clearmsg:{target_id}", "CLEARMSG", channel, sent_ms, None,
                     msg.tag("login") or None, None, text, False, None, None, None,
                     target_id, msg.raw_tags)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one line is: an IRC message (and the event it carries, if recorded), or rejected."""

    message: IrcMessage | None
    event: ChatEvent | None
    rejected: str | None  # the reason, when the line is unusable


def decode(line: str, *, received_ms: int) -> Decoded:
    """`parse_line` then `chat_event`, never raising: an unusable line comes back with a reason."""
    try:
        message = parse_line(line)
        return Decoded(message, chat_event(message, received_ms=received_ms), None)
    except IrcLineRejected as exc:
        return Decoded(None, None, str(exc))


def excerpt(line: str, limit: int = 200) -> str:
    """The start of a line for a log event: bounded, control characters made visible."""
    cut = line[:limit]
    return cut.encode("unicode_escape", "replace").decode("ascii") + (
        f"... ({len(line)} chars)" if len(line) > limit else ""
    )


def parse_badges(value: str) -> list[tuple[str, str]]:
    """`subscriber/6,premium/1` -> [('subscriber', '6'), ('premium', '1')]; junk is skipped."""
    badges = []
    for item in value.split(","):
        name, sep, version = item.partition("/")
        if name and sep:
            badges.append((name, version))
    return badges


def parse_emotes(value: str, text: str) -> list[Emote]:
    """`25:0-4,12-16/1902:6-10` -> Emotes sorted by position; ranges outside `text` are dropped."""
    emotes = []
    for group in value.split("/"):
        emote_id, sep, ranges = group.partition(":")
        if not emote_id or not sep:
            continue
        for span in ranges.split(","):
            match = _EMOTE_RANGE.match(span)
            if match is None:
                continue
            start, end = int(match.group(1)), int(match.group(2))
            if start <= end < len(text):
                emotes.append(Emote(emote_id, start, end))
    return sorted(emotes, key=lambda e: (e.start, e.end))
