"""Setting values: the types settings take (`Secret`, `HostPort`, `DatabaseUrl`, `IrcEndpoint`)
and the parsers that read them from text. Pure: each parser takes the raw text and returns a value
or raises ValueError with the reason; `config.py` names the variable. Nothing here reads the
environment.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

REDACTED = "**********"

# .env keys that belong to other tools sharing the file (docker compose, the postgres image).
FOREIGN_PREFIXES = ("POSTGRES_", "COMPOSE_", "DOCKER_")


@dataclass(frozen=True)
class Secret:
    """A value that must never be printed. `repr` and `str` are redacted; `get()` reveals it."""

    _value: str = field(repr=False)

    def get(self) -> str:
        """The secret itself, for the one place that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{REDACTED}')"

    def __str__(self) -> str:
        return REDACTED


@dataclass(frozen=True)
class HostPort:
    """An address to listen on. Port 0 asks the kernel for a free port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DatabaseUrl:
    """A PostgreSQL connection string. `redacted` is safe to log; `conninfo` holds the password."""

    conninfo: Secret
    redacted: str
    password: Secret | None
    # The password as written in the URL (percent-encoded), when that differs from its value.
    password_as_written: Secret | None = None

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.redacted!r})"


# --- parsers: each takes the raw text and returns a value or raises ValueError(reason) ---------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


_MAX_DURATION_S = 366 * 86400.0


def parse_duration(raw: str) -> float:
    """`90`, `90s`, `5m`, `1h30m`, `250ms` -> seconds. A bare number means seconds."""
    text = raw.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return _bounded(float(text), raw)
    if re.fullmatch(r"-\d+(?:\.\d+)?", text):
        raise ValueError(f"must not be negative, got {raw!r}")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration such as 30s, 5m, 2h or 1h30m, got {raw!r}")
    return _bounded(total, raw)


def _bounded(seconds: float, raw: str) -> float:
    # Plain digits only, so no inf or nan; an absurd size would still overflow timers.
    if seconds > _MAX_DURATION_S:
        raise ValueError(f"must be at most 366 days, got {raw!r}")
    return seconds


def positive_duration(raw: str) -> float:
    value = parse_duration(raw)
    if value <= 0:
        raise ValueError(f"must be greater than zero, got {raw!r}")
    return value


def int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def log_level(raw: str) -> str:
    value = raw.strip().lower()
    value = {"warn": "warning", "fatal": "critical"}.get(value, value)
    return choice("debug", "info", "warning", "error", "critical")(value)


def parse_host_port(raw: str) -> HostPort:
    """`127.0.0.1:8080`, `[::1]:8080`, `localhost:0`, `:8080` (all interfaces)."""
    text = raw.strip()
    match = re.fullmatch(
        r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p1>\d+)|(?P<host>[^:\[\]]*):(?P<p2>\d+)", text
    )
    if match is None:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8080, got {raw!r}")
    host = match.group("v6") or match.group("host") or "0.0.0.0"  # noqa: S104 - ":8080" asks for all interfaces
    port = int(match.group("p1") or match.group("p2"))
    if port > 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    if match.group("v6"):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    elif not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        raise ValueError(f"{host!r} is not a host name or IP address")
    return HostPort(host, port)


_ESCAPE_HINT = (
    " (a password containing / : @ ? # must be percent-encoded in the URL, or set in "
    "DATABASE_PASSWORD instead)"
)


def parse_database_url(raw: str) -> DatabaseUrl:
    """A `postgresql://` URL or a libpq `key=value` string; the password is kept as a Secret."""
    text = raw.strip()
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text) and not text.startswith(
        ("postgresql://", "postgres://")
    ):
        raise ValueError("expected a postgresql:// URL or a libpq key=value connection string")
    try:
        params = conninfo_to_dict(text)
    except Exception:
        raise ValueError(f"is not a valid PostgreSQL connection string{_ESCAPE_HINT}") from None
    for port in str(params.get("port") or "5432").split(","):
        if not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError(f"has a port that is not a number between 1 and 65535{_ESCAPE_HINT}")
    password = params.get("password")
    as_written = urlsplit(text).password if "://" in text else None
    where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
    user = str(params.get("user") or "")
    redacted = f"postgresql://{user + '@' if user else ''}{where}/{params.get('dbname') or ''}"
    return DatabaseUrl(
        conninfo=Secret(text),
        redacted=redacted,
        password=Secret(str(password)) if password else None,
        password_as_written=Secret(as_written) if as_written and as_written != password else None,
    )


def with_password(url: DatabaseUrl, password: Secret) -> DatabaseUrl:
    """`url` with its password replaced by `password`, passed as a libpq parameter.

    The password never goes through URL syntax, so `/`, `@`, `:`, `?`, `#`, `+` and `=` need no
    escaping: this is how compose hands over a generated password (DATABASE_PASSWORD).
    """
    conninfo = make_conninfo(url.conninfo.get(), password=password.get())
    return DatabaseUrl(conninfo=Secret(conninfo), redacted=url.redacted, password=password)


_LOGIN = re.compile(r"^[a-z0-9_]{1,25}$")


def parse_logins(raw: str) -> tuple[str, ...]:
    """`alice, Bob ,carol` -> ('alice', 'bob', 'carol'): logins, lower-cased, deduplicated."""
    logins: list[str] = []
    for part in raw.split(","):
        login = part.strip().lower()
        if not login:
            continue
        if not _LOGIN.match(login):
            raise ValueError(f"{part.strip()!r} is not a Twitch login (letters, digits, _)")
        if login not in logins:
            logins.append(login)
    return tuple(logins)


def retention_overrides(raw: str) -> dict[str, int]:
    """`alice=60,bob=14` -> {'alice': 60, 'bob': 14}."""
    overrides: dict[str, int] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        login, sep, days = part.partition("=")
        login = login.strip().lower()
        if not sep or not _LOGIN.match(login) or not days.strip().isdigit():
            raise ValueError(f"expected login=days pairs such as alice=60,bob=14, got {part!r}")
        if not 1 <= int(days) <= 3650:
            raise ValueError(f"{login}: days must be between 1 and 3650")
        overrides[login] = int(days)
    return overrides


def http_url(raw: str) -> str:
    text = raw.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {raw!r}")
    return text


def rate(raw: str) -> str:
    """yt-dlp's rate syntax: `50K`, `4.2M`, `1G` bytes a second; empty for no limit."""
    text = raw.strip().upper()
    if text and not re.fullmatch(r"\d+(?:\.\d+)?[KMG]?", text):
        raise ValueError(f"expected bytes per second such as 500K, 10M or 1G, got {raw!r}")
    return text


def positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    if not 0 <= value < 1e6:
        raise ValueError(f"must be between 0 and 1000000, got {raw!r}")
    return value


@dataclass(frozen=True)
class IrcEndpoint:
    """Where Twitch chat is: host, port, TLS or not, WebSocket or plain IRC."""

    url: str
    host: str
    port: int
    tls: bool
    websocket: bool


_IRC_SCHEMES = {"wss": (443, True, True), "ws": (80, False, True), "ircs": (6697, True, False),
                "irc": (6667, False, False)}  # fmt: skip


def parse_irc_url(raw: str) -> IrcEndpoint:
    """`wss://irc-ws.chat.twitch.tv:443`, `ws://`, `ircs://host:6697`, `irc://host:6667`."""
    text = raw.strip()
    parts = urlsplit(text)
    if parts.scheme not in _IRC_SCHEMES or not parts.hostname:
        raise ValueError(f"expected a wss://, ws://, ircs:// or irc:// URL, got {raw!r}")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials (use TWITCH_OAUTH_TOKEN)")
    default_port, tls, websocket = _IRC_SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError(f"has an invalid port: {raw!r}") from None
    return IrcEndpoint(text, parts.hostname, port, tls, websocket)


def login(raw: str) -> str:
    value = raw.strip().lower()
    if value and not _LOGIN.match(value):
        raise ValueError(f"{raw.strip()!r} is not a Twitch login (letters, digits, _)")
    return value


def oauth_token(raw: str) -> Secret:
    # Twitch's tools hand out tokens as `oauth:xyz`; the PASS line wants exactly that form.
    value = raw.strip()
    return Secret(value[len("oauth:") :] if value.lower().startswith("oauth:") else value)


def flush_interval(raw: str) -> float:
    value = positive_duration(raw)
    if value > 1.0:
        raise ValueError(f"must be at most 1s (a killed recorder may lose only this), got {raw!r}")
    return value


def chat_lease(raw: str) -> float:
    value = parse_duration(raw)
    if not 1.0 <= value <= 600.0:
        raise ValueError(f"must be between 1s and 10m, got {raw!r}")
    return value


def nonempty(raw: str) -> str:
    return raw.strip()


def secret(raw: str) -> Secret:
    return Secret(raw.strip())


def path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must not be empty")
    return Path(raw.strip()).expanduser()


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(raw: str) -> int:
    """`256K`, `16M`, `1.5G`, `256GB`, `1048576` -> bytes (binary units)."""
    match = _SIZE.fullmatch(raw.strip())
    if match is None:
        raise ValueError(f"expected a size such as 256K, 16M or 2G, got {raw!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def chunk_size(raw: str) -> int:
    size = parse_size(raw)
    if size <= 0 or size % (256 * 1024):
        raise ValueError(f"must be a positive multiple of 256K (YouTube's rule), got {raw!r}")
    if size > 2**30:
        raise ValueError(f"must be at most 1G, got {raw!r}")
    return size


def flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1 or 0 (true/false), got {raw!r}")


def encryption_key(raw: str) -> Secret:
    from vodarchiver.youtube.crypto import parse_key  # noqa: PLC0415 - cryptography is heavy

    parse_key(raw)
    return Secret(raw.strip())


def template(raw: str) -> str:
    from vodarchiver.youtube.metadata import check_template  # noqa: PLC0415

    # `\n` in a one-line environment value means a new line.
    return check_template(raw.replace("\\n", "\n"))


VOD_TYPES = ("archive", "highlight", "upload")


def vod_types(raw: str) -> tuple[str, ...]:
    """`archive,highlight` -> ('archive', 'highlight'): Helix video types, at least one."""
    found = tuple(dict.fromkeys(t.strip().lower() for t in raw.split(",") if t.strip()))
    bad = [t for t in found if t not in VOD_TYPES]
    if bad or not found:
        raise ValueError(f"expected some of {', '.join(VOD_TYPES)}, got {raw!r}")
    return found


def tags(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))


_PLAYLIST = re.compile(r"[A-Za-z0-9_-]{2,64}")


def playlists(raw: str) -> dict[str, str]:
    """`alice=PLxxxx,bob=PLyyyy` -> {'alice': 'PLxxxx', 'bob': 'PLyyyy'}."""
    found: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        login, sep, playlist = part.partition("=")
        login, playlist = login.strip().lower(), playlist.strip()
        if not sep or not _LOGIN.match(login) or not re.fullmatch(r"[A-Za-z0-9_-]{2,64}", playlist):
            raise ValueError(
                f"expected login=playlistId pairs such as alice=PLabc123, got {part!r}"
            )
        found[login] = playlist
    return found


def quota_budgets(raw: str) -> dict[str, int]:
    from vodarchiver.pipeline.quota import parse_budgets  # noqa: PLC0415

    return parse_budgets(raw)


def quota_costs(raw: str) -> dict[str, tuple[str, int]]:
    from vodarchiver.pipeline.quota import parse_costs  # noqa: PLC0415

    return parse_costs(raw)


DEFAULT_DESCRIPTION = (
    "{title}\\nStreamed on Twitch by {channel} on {date} ({duration}).\\nOriginal: {url}"
    "\\n\\n{chapters}"
)


def admin_token(raw: str) -> Secret:
    """ADMIN_TOKEN: printable ASCII without spaces, long enough that guessing it is hopeless."""
    value = raw.strip()
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise ValueError("must be printable ASCII without spaces")
    if len(value) < 16:
        raise ValueError(f"must be at least 16 characters, got {len(value)}")
    return Secret(value)


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def host_names(raw: str) -> tuple[str, ...]:
    """`archiver.example.com,vodarchiver`: host names (no port, no scheme, no wildcard)."""
    names = [part.strip().lower().rstrip(".") for part in raw.split(",") if part.strip()]
    for name in names:
        if not _HOST_NAME.fullmatch(name):
            raise ValueError(f"{name[:60]!r} is not a host name (no port, scheme or wildcard)")
    return tuple(dict.fromkeys(names))


def masked_tail(secret: str) -> str:
    """`…abcd`: the last 4 characters of a credential, to tell tokens apart in logs; only `…` for
    a value too short for 4 characters to be a small share of it."""
    return "\u2026" + secret[-4:] if len(secret) >= 16 else "\u2026"
