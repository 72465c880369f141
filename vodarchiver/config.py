"""Settings: read once from the environment and an optional `.env` file into a frozen record.

This is the only module that reads the environment. Every variable is declared once in
`VARIABLES` (name, group, default, meaning, parser); CONFIG.md documents the same list and a test
keeps the two in step. `load_settings` reports every bad variable at once in one ConfigError.
Secret values are wrapped in `Secret`, whose repr is redacted, and are listed by
`Settings.secret_values()` so the log pipeline can scrub them from anything it writes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from psycopg.conninfo import conninfo_to_dict

from vodarchiver.errors import ConfigError

REDACTED = "**********"

# .env keys that belong to other tools sharing the file (docker compose, the postgres image).
_FOREIGN_PREFIXES = ("POSTGRES_", "COMPOSE_", "DOCKER_")


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


def _positive_duration(raw: str) -> float:
    value = parse_duration(raw)
    if value <= 0:
        raise ValueError(f"must be greater than zero, got {raw!r}")
    return value


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _log_level(raw: str) -> str:
    value = raw.strip().lower()
    value = {"warn": "warning", "fatal": "critical"}.get(value, value)
    return _choice("debug", "info", "warning", "error", "critical")(value)


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
        raise ValueError("is not a valid PostgreSQL connection string") from None
    for port in str(params.get("port") or "5432").split(","):
        if not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError("has a port that is not a number between 1 and 65535")
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


def _retention_overrides(raw: str) -> dict[str, int]:
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


def _http_url(raw: str) -> str:
    text = raw.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {raw!r}")
    return text


def _rate(raw: str) -> str:
    """yt-dlp's rate syntax: `50K`, `4.2M`, `1G` bytes a second; empty for no limit."""
    text = raw.strip().upper()
    if text and not re.fullmatch(r"\d+(?:\.\d+)?[KMG]?", text):
        raise ValueError(f"expected bytes per second such as 500K, 10M or 1G, got {raw!r}")
    return text


def _positive_float(raw: str) -> float:
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


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1 or 0 (true/false), got {raw!r}")


def _login(raw: str) -> str:
    value = raw.strip().lower()
    if value and not _LOGIN.match(value):
        raise ValueError(f"{raw.strip()!r} is not a Twitch login (letters, digits, _)")
    return value


def _oauth_token(raw: str) -> Secret:
    # Twitch's tools hand out tokens as `oauth:xyz`; the PASS line wants exactly that form.
    value = raw.strip()
    return Secret(value[len("oauth:") :] if value.lower().startswith("oauth:") else value)


def _flush_interval(raw: str) -> float:
    value = _positive_duration(raw)
    if value > 1.0:
        raise ValueError(f"must be at most 1s (a killed recorder may lose only this), got {raw!r}")
    return value


def _nonempty(raw: str) -> str:
    return raw.strip()


def _secret(raw: str) -> Secret:
    return Secret(raw.strip())


def _path(raw: str) -> Path:
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


def _chunk_size(raw: str) -> int:
    size = parse_size(raw)
    if size <= 0 or size % (256 * 1024):
        raise ValueError(f"must be a positive multiple of 256K (YouTube's rule), got {raw!r}")
    if size > 2**30:
        raise ValueError(f"must be at most 1G, got {raw!r}")
    return size


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1 or 0 (true/false), got {raw!r}")


def _encryption_key(raw: str) -> Secret:
    from vodarchiver.youtube.crypto import parse_key  # noqa: PLC0415 - cryptography is heavy

    parse_key(raw)
    return Secret(raw.strip())


def _template(raw: str) -> str:
    from vodarchiver.youtube.metadata import check_template  # noqa: PLC0415

    # `\n` in a one-line environment value means a new line.
    return check_template(raw.replace("\\n", "\n"))


def _tags(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))


_PLAYLIST = re.compile(r"[A-Za-z0-9_-]{2,64}")


def _playlists(raw: str) -> dict[str, str]:
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


def _quota_budgets(raw: str) -> dict[str, int]:
    from vodarchiver.pipeline.quota import parse_budgets  # noqa: PLC0415

    return parse_budgets(raw)


def _quota_costs(raw: str) -> dict[str, tuple[str, int]]:
    from vodarchiver.pipeline.quota import parse_costs  # noqa: PLC0415

    return parse_costs(raw)


_DEFAULT_DESCRIPTION = (
    "{title}\\nStreamed on Twitch by {channel} on {date} ({duration}).\\nOriginal: {url}"
    "\\n\\n{chapters}"
)

# --- the declaration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One environment variable: its group in CONFIG.md, its default as text, what it means."""

    name: str
    attr: str
    group: str
    default: str | None
    help: str
    parse: Callable[[str], Any]
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    # Twitch
    Variable(
        "TWITCH_CHANNELS", "twitch_channels", "Twitch", "",
        "Channels to archive: comma-separated Twitch logins.", parse_logins,
    ),
    Variable(
        "TWITCH_CHANNEL", "twitch_channel", "Twitch", "",
        "The runbook's single-channel form; added to `TWITCH_CHANNELS`.", parse_logins,
    ),
    Variable(
        "TWITCH_CLIENT_ID", "twitch_client_id", "Twitch", "",
        "Client id of your Twitch application (dev.twitch.tv/console); with the secret, it "
        "obtains the app token discovery uses. Without both, discovery is off.", _nonempty,
    ),
    Variable(
        "TWITCH_CLIENT_SECRET", "twitch_client_secret", "Twitch", None,
        "Client secret of that application.", _secret, secret=True,
    ),
    Variable(
        "TWITCH_API_URL", "twitch_api_url", "Twitch", "https://api.twitch.tv/helix",
        "Base URL of the Helix API.", _http_url,
    ),
    Variable(
        "TWITCH_AUTH_URL", "twitch_auth_url", "Twitch", "https://id.twitch.tv/oauth2",
        "Base URL of Twitch's OAuth server (its `/token` gives the app token).", _http_url,
    ),
    Variable(
        "TWITCH_RETENTION_DAYS", "twitch_retention_days", "Twitch", "",
        "Per-channel override of how long Twitch keeps VODs, as `login=days` pairs "
        "(`alice=60,bob=14`). Otherwise: 60 days for partners, 14 for affiliates, 7 for others.",
        _retention_overrides,
    ),
    Variable(
        "HELIX_TIMEOUT", "helix_timeout_s", "Twitch", "10s",
        "Timeout of each Helix or token request.", _positive_duration,
    ),
    # Chat
    Variable(
        "CHAT_AUTO_START", "chat_auto_start", "Chat", "0",
        "`1`: record the chat of every configured channel while it is live (Helix `/streams`, "
        "needs the client id and secret). `0`: the runbook's form, the chat of `TWITCH_CHANNEL` "
        "is recorded all the time (no `TWITCH_CHANNEL`: no chat).", _bool,
    ),
    Variable(
        "CHAT_POLL_INTERVAL", "chat_poll_interval_s", "Chat", "30s",
        "How often Helix is asked which channels are live, and placeholders are reconciled.",
        _positive_duration,
    ),
    Variable(
        "CHAT_OFFLINE_GRACE", "chat_offline_grace_s", "Chat", "2m",
        "How long a channel must look offline (and in two answers in a row) before its "
        "recorder stops: one flapping answer never stops it.", parse_duration,
    ),
    Variable(
        "CHAT_FLUSH_INTERVAL", "chat_flush_interval_s", "Chat", "500ms",
        "Longest time a received message waits before it is written (at most 1s: what a "
        "SIGKILL may lose).", _flush_interval,
    ),
    Variable(
        "TWITCH_BOT_USERNAME", "twitch_bot_username", "Chat", "",
        "Login the chat connection uses with `TWITCH_OAUTH_TOKEN`; empty: anonymous, read-only "
        "(`justinfan<digits>`).", _login,
    ),
    Variable(
        "TWITCH_OAUTH_TOKEN", "twitch_oauth_token", "Chat", None,
        "User token of that login for chat (with or without `oauth:`); needs "
        "`TWITCH_BOT_USERNAME`.",
        _oauth_token, secret=True,
    ),
    Variable(
        "TWITCH_IRC_URL", "twitch_irc_url", "Chat", "wss://irc-ws.chat.twitch.tv:443",
        "Chat endpoint: `wss://` or `ws://` (WebSocket), `ircs://` (TLS) or `irc://`.",
        parse_irc_url,
    ),
    Variable(
        "VOD_RECONCILE_WINDOW", "vod_reconcile_window_s", "Chat", "15m",
        "A placeholder (chat of a live stream) still without its VOD this long after the "
        "stream ended is reported by `/status`; a VOD without a stream id is matched to a "
        "placeholder whose start is this close.", _positive_duration,
    ),
    # Pipeline
    Variable(
        "DISCOVERY_INTERVAL", "discovery_interval_s", "Pipeline", "5m",
        "How often each channel's VOD list is read from Helix.", _positive_duration,
    ),
    Variable(
        "MAX_CONCURRENT_DOWNLOADS", "max_concurrent_downloads", "Pipeline", "1",
        "VODs downloaded at once by this daemon (0 turns the download stage off).",
        _int_in(0, 32),
    ),
    Variable(
        "DOWNLOAD_MAX_ATTEMPTS", "download_max_attempts", "Pipeline", "5",
        "Failed download attempts after which a VOD is `failed_permanent`.", _int_in(1, 100),
    ),
    Variable(
        "DOWNLOAD_BACKOFF_BASE", "download_backoff_base_s", "Pipeline", "1m",
        "Wait after the first failed attempt; doubles with each further failure.",
        _positive_duration,
    ),
    Variable(
        "DOWNLOAD_BACKOFF_MAX", "download_backoff_max_s", "Pipeline", "6h",
        "Longest wait between two download attempts.", _positive_duration,
    ),
    Variable(
        "MAX_CONCURRENT_UPLOADS", "max_concurrent_uploads", "Pipeline", "1",
        "VODs uploaded at once by this daemon (0 turns the upload stage off).", _int_in(0, 16),
    ),
    Variable(
        "UPLOAD_MAX_ATTEMPTS", "upload_max_attempts", "Pipeline", "5",
        "Failed upload attempts after which a VOD is `failed_permanent` (quota, credentials and "
        "restarts do not count).", _int_in(1, 100),
    ),
    Variable(
        "UPLOAD_BACKOFF_BASE", "upload_backoff_base_s", "Pipeline", "1m",
        "Wait after the first failed upload attempt; doubles with each further failure.",
        _positive_duration,
    ),
    Variable(
        "UPLOAD_BACKOFF_MAX", "upload_backoff_max_s", "Pipeline", "6h",
        "Longest wait between two upload attempts.", _positive_duration,
    ),
    Variable(
        "UPLOAD_RETRY_BASE", "upload_retry_base_s", "Pipeline", "1s",
        "Within an attempt, the first wait before asking YouTube what it holds after a failed "
        "chunk (doubling, jittered, at most a minute, 8 times).", _positive_duration,
    ),
    Variable(
        "CIRCUIT_FAILURE_THRESHOLD", "circuit_failure_threshold", "Pipeline", "5",
        "Consecutive failed uploads that open the circuit breaker.", _int_in(1, 1000),
    ),
    Variable(
        "CIRCUIT_OPEN_COOLDOWN", "circuit_open_cooldown_s", "Pipeline", "15m",
        "How long an open breaker stops uploads before one probe upload is let through.",
        _positive_duration,
    ),
    # Media
    Variable(
        "DOWNLOAD_CONCURRENT_FRAGMENTS", "download_concurrent_fragments", "Media", "16",
        "HLS fragments yt-dlp fetches in parallel for one VOD (chosen by `make bench`).",
        _int_in(1, 64),
    ),
    Variable(
        "DOWNLOAD_RATE_LIMIT", "download_rate_limit", "Media", "",
        "Bandwidth cap of one download in bytes a second (`500K`, `10M`); empty: none.", _rate,
    ),
    Variable(
        "DOWNLOAD_SIZE_ESTIMATE_MBPS", "download_size_estimate_mbps", "Media", "8",
        "Bitrate assumed to estimate a VOD's size from its duration before downloading it "
        "(Twitch's source quality is at most about 8 Mbps).", _positive_float,
    ),
    # Storage (download)
    Variable(
        "DISK_MIN_FREE_GB", "disk_min_free_gb", "Storage", "5",
        "Free space DATA_DIR must keep: a download that would eat into it waits "
        "(`waiting_for_disk`) until space returns.", _positive_float,
    ),
    # YouTube
    Variable(
        "YOUTUBE_UPLOAD_ENABLED", "youtube_upload_enabled", "YouTube", "1",
        "0 keeps downloaded VODs in `downloaded`; they are published once this is 1 again.",
        _flag,
    ),
    Variable(
        "YT_CLIENT_ID", "yt_client_id", "YouTube", "",
        "OAuth client id of your Google Cloud project (a Desktop app client). Without it and "
        "the secret, uploads are off and downloaded VODs wait.", _nonempty,
    ),
    Variable(
        "YT_CLIENT_SECRET", "yt_client_secret", "YouTube", None,
        "That client's secret.", _secret, secret=True,
    ),
    Variable(
        "YT_REFRESH_TOKEN", "yt_refresh_token", "YouTube", None,
        "A refresh token to store at start-up instead of running `vodarchiver auth youtube` "
        "(stored again only when it changes; the stored one is rotated as Google says).",
        _secret, secret=True,
    ),
    Variable(
        "ENCRYPTION_KEY", "encryption_key", "YouTube", None,
        "Base64 of 32 random bytes (`openssl rand -base64 32`): OAuth tokens are stored "
        "encrypted with it (AES-256-GCM). Keep it: without it the stored tokens cannot be read.",
        _encryption_key, secret=True,
    ),
    Variable(
        "ALLOW_PLAINTEXT_TOKENS", "allow_plaintext_tokens", "YouTube", "0",
        "1 lets tokens be stored unencrypted when ENCRYPTION_KEY is unset (not recommended).",
        _flag,
    ),
    Variable(
        "YOUTUBE_API_URL", "youtube_api_url", "YouTube", "https://www.googleapis.com",
        "Base URL of the YouTube Data API and its upload endpoint.", _http_url,
    ),
    Variable(
        "GOOGLE_TOKEN_URL", "google_token_url", "YouTube", "https://oauth2.googleapis.com/token",
        "Google's OAuth token endpoint.", _http_url,
    ),
    Variable(
        "GOOGLE_AUTH_URL", "google_auth_url", "YouTube",
        "https://accounts.google.com/o/oauth2/auth",
        "Google's consent page, for `vodarchiver auth youtube`.", _http_url,
    ),
    Variable(
        "UPLOAD_CHUNK_SIZE", "upload_chunk_size", "YouTube", "64M",
        "Bytes per upload request (a multiple of 256K; chosen by `make bench`). A failed chunk "
        "resumes from what YouTube holds.", _chunk_size,
    ),
    Variable(
        "YOUTUBE_TITLE_TEMPLATE", "youtube_title_template", "YouTube",
        "{title} - {channel} {date}",
        "Video title. Fields: {channel} {title} {date} {vod_id} {url} {duration} {part} {parts} "
        "{chapters}. Cut to 100 characters; ` (Part n/N)` is added to split VODs.", _template,
    ),
    Variable(
        "YOUTUBE_DESCRIPTION_TEMPLATE", "youtube_description_template", "YouTube",
        _DEFAULT_DESCRIPTION,
        "Video description, same fields (`\\n` for a new line). Twitch's muted ranges and the "
        "marker that identifies the upload are added; cut to 5,000 bytes.", _template,
    ),
    Variable(
        "YOUTUBE_PRIVACY", "youtube_privacy", "YouTube", "private",
        "`private`, `unlisted` or `public`.", _choice("private", "unlisted", "public"),
    ),
    Variable(
        "YOUTUBE_CATEGORY_ID", "youtube_category_id", "YouTube", "20",
        "YouTube category id (20 is Gaming).", _int_in(1, 99),
    ),
    Variable(
        "YOUTUBE_TAGS", "youtube_tags", "YouTube", "",
        "Comma-separated tags added to every video (500 characters in all).", _tags,
    ),
    Variable(
        "YOUTUBE_PLAYLISTS", "youtube_playlists", "YouTube", "",
        "Playlist per channel, as `login=playlistId` pairs; each video is added to it.",
        _playlists,
    ),
    Variable(
        "YOUTUBE_MAX_PART_DURATION", "youtube_max_part_duration_s", "YouTube", "11h55m",
        "A longer VOD is split (stream copy, at keyframes) into parts titled (Part n/N).",
        _positive_duration,
    ),
    Variable(
        "YOUTUBE_MAX_PART_SIZE", "youtube_max_part_size", "YouTube", "256G",
        "A larger VOD is split too (YouTube takes at most 256 GB per video).", parse_size,
    ),
    Variable(
        "YOUTUBE_QUOTA_BUDGETS", "youtube_quota_budgets", "YouTube", "default=10000",
        "Daily quota buckets, as `bucket=units` pairs (reset at midnight Pacific time).",
        _quota_budgets,
    ),
    Variable(
        "YOUTUBE_QUOTA_COSTS", "youtube_quota_costs", "YouTube",
        "videos.insert=default:1600",
        "Price of each call as `call=bucket:units` (calls: videos.insert, videos.list, "
        "channels.list, playlistItems.list, playlistItems.insert; unnamed ones cost 1, 50 for "
        "playlistItems.insert, from `default`). Google's separate upload bucket: "
        "`YOUTUBE_QUOTA_BUDGETS=default=10000,uploads=100` and "
        "`YOUTUBE_QUOTA_COSTS=videos.insert=uploads:1`.", _quota_costs,
    ),
    Variable(
        "UPLOAD_LIMIT_COOLDOWN", "upload_limit_cooldown_s", "YouTube", "6h",
        "How long uploads pause after YouTube's uploadLimitExceeded.", _positive_duration,
    ),
    Variable(
        "DELETE_AFTER_UPLOAD", "delete_after_upload", "YouTube", "1",
        "1 deletes a VOD's local files once every part is confirmed on YouTube.", _flag,
    ),
    # Database
    Variable(
        "DATABASE_URL", "database_url", "Database", None,
        "PostgreSQL to use, as a `postgresql://` URL or libpq `key=value` string. "
        "Unset: the daemon runs its own private PostgreSQL with its data under "
        "`DATA_DIR/postgres`.",
        parse_database_url, secret=True,
    ),
    Variable(
        "DATABASE_POOL_MIN_SIZE", "database_pool_min_size", "Database", "1",
        "Connections the pool keeps open.", _int_in(0, 100),
    ),
    Variable(
        "DATABASE_POOL_MAX_SIZE", "database_pool_max_size", "Database", "10",
        "Most connections the pool opens.", _int_in(1, 100),
    ),
    Variable(
        "DATABASE_CONNECT_TIMEOUT", "database_connect_timeout_s", "Database", "10s",
        "How long start-up waits for PostgreSQL to accept a connection before giving up (exit 2).",
        _positive_duration,
    ),
    Variable(
        "MIGRATION_LOCK_TIMEOUT", "migration_lock_timeout_s", "Database", "10m",
        "How long start-up waits for another replica's migration to finish before giving up.",
        _positive_duration,
    ),
    Variable(
        "EMBEDDED_PG_PORT", "embedded_pg_port", "Database", "0",
        "Loopback port of the embedded PostgreSQL; 0 picks a free one at each start.",
        _int_in(0, 65535),
    ),
    # Storage
    Variable(
        "DATA_DIR", "data_dir", "Storage", "./data",
        "Where downloads and the embedded PostgreSQL live.", _path,
    ),
    # HTTP
    Variable(
        "HTTP_ADDR", "http_addr", "HTTP", "127.0.0.1:8080",
        "Address of `/healthz`, `/readyz`, `/status` and `/metrics`; port 0 picks a free port.",
        parse_host_port,
    ),
    # Logging
    Variable(
        "LOG_LEVEL", "log_level", "Logging", "info",
        "`debug`, `info`, `warning` or `error`.", _log_level,
    ),
    Variable(
        "LOG_FORMAT", "log_format", "Logging", "text",
        "`text` (key=value lines) or `json` (one object per line).", _choice("text", "json"),
    ),
    # Daemon
    Variable(
        "SHUTDOWN_TIMEOUT", "shutdown_timeout_s", "Daemon", "8s",
        "The whole budget of a stop on SIGTERM or SIGINT: running work gets most of it to "
        "checkpoint, the database the rest; then the daemon exits regardless.",
        _positive_duration,
    ),
    Variable(
        "ENV_FILE", "env_file", "Daemon", ".env",
        "Optional file of `NAME=value` lines read before the environment (the environment wins). "
        "A missing default `.env` is ignored; a missing file named here is an error.",
        _path,
    ),
)  # fmt: skip

GROUPS: tuple[str, ...] = ("Twitch", "Chat", "YouTube", "Database", "Storage", "Media", "Pipeline",
                           "HTTP", "Logging", "Daemon")  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Every setting, typed and validated. Build it with `load_settings`."""

    twitch_channels: tuple[str, ...]
    twitch_channel: tuple[str, ...]
    twitch_client_id: str
    twitch_client_secret: Secret | None
    twitch_api_url: str
    twitch_auth_url: str
    twitch_retention_days: dict[str, int]
    helix_timeout_s: float
    chat_auto_start: bool
    chat_poll_interval_s: float
    chat_offline_grace_s: float
    chat_flush_interval_s: float
    twitch_bot_username: str
    twitch_oauth_token: Secret | None
    twitch_irc_url: IrcEndpoint
    vod_reconcile_window_s: float
    discovery_interval_s: float
    max_concurrent_downloads: int
    download_max_attempts: int
    download_backoff_base_s: float
    download_backoff_max_s: float
    download_concurrent_fragments: int
    download_rate_limit: str
    download_size_estimate_mbps: float
    disk_min_free_gb: float
    youtube_upload_enabled: bool
    yt_client_id: str
    yt_client_secret: Secret | None
    yt_refresh_token: Secret | None
    encryption_key: Secret | None
    allow_plaintext_tokens: bool
    youtube_api_url: str
    google_token_url: str
    google_auth_url: str
    upload_chunk_size: int
    youtube_title_template: str
    youtube_description_template: str
    youtube_privacy: str
    youtube_category_id: int
    youtube_tags: tuple[str, ...]
    youtube_playlists: dict[str, str]
    youtube_max_part_duration_s: float
    youtube_max_part_size: int
    youtube_quota_budgets: dict[str, int]
    youtube_quota_costs: dict[str, tuple[str, int]]
    upload_limit_cooldown_s: float
    delete_after_upload: bool
    max_concurrent_uploads: int
    upload_max_attempts: int
    upload_backoff_base_s: float
    upload_backoff_max_s: float
    upload_retry_base_s: float
    circuit_failure_threshold: int
    circuit_open_cooldown_s: float
    database_url: DatabaseUrl | None
    database_pool_min_size: int
    database_pool_max_size: int
    database_connect_timeout_s: float
    migration_lock_timeout_s: float
    embedded_pg_port: int
    data_dir: Path
    http_addr: HostPort
    log_level: str
    log_format: str
    shutdown_timeout_s: float
    env_file: Path
    unknown_env_file_keys: tuple[str, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel to archive: TWITCH_CHANNELS, then TWITCH_CHANNEL if not already there."""
        return tuple(dict.fromkeys((*self.twitch_channels, *self.twitch_channel)))

    def discovery_off_reason(self) -> str | None:
        """Why discovery cannot run with these settings, or None when it can."""
        missing = [name for name, value in (
            ("TWITCH_CLIENT_ID", self.twitch_client_id),
            ("TWITCH_CLIENT_SECRET", self.twitch_client_secret and self.twitch_client_secret.get()),
        ) if not value]  # fmt: skip
        if missing:
            return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
        if not self.channels:
            return "no channel configured (TWITCH_CHANNELS or TWITCH_CHANNEL)"
        return None

    def upload_off_reason(self) -> str | None:
        """Why the upload stage cannot run with these settings, or None when it can."""
        if not self.youtube_upload_enabled:
            return "YOUTUBE_UPLOAD_ENABLED is 0"
        if self.max_concurrent_uploads == 0:
            return "MAX_CONCURRENT_UPLOADS is 0"
        if not self.yt_client_id or not (self.yt_client_secret and self.yt_client_secret.get()):
            return "YT_CLIENT_ID and YT_CLIENT_SECRET are not set"
        return None

    def chat_off_reason(self) -> str | None:
        """Why no chat is recorded with these settings, or None when it is."""
        if self.chat_auto_start:
            if not self.channels:
                return "CHAT_AUTO_START is 1 but no channel is configured (TWITCH_CHANNELS)"
            off = self.discovery_off_reason()
            return f"CHAT_AUTO_START needs Helix: {off}" if off else None
        if not self.twitch_channel:
            return "neither CHAT_AUTO_START=1 nor TWITCH_CHANNEL is set"
        return None

    def secret_values(self) -> tuple[str, ...]:
        """Every secret string, so the logger can scrub them wherever they appear."""
        found: list[str] = []
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if isinstance(value, Secret):
                found.append(value.get())
            elif isinstance(value, DatabaseUrl):
                found += [s.get() for s in (value.password, value.password_as_written) if s]
        return tuple(v for v in found if v)

    def describe(self) -> dict[str, str]:
        """Each variable with its effective value, secrets redacted: for `vodarchiver config`."""
        shown: dict[str, str] = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if value is None:
                shown[var.name] = "(unset)"
            elif isinstance(value, DatabaseUrl):
                shown[var.name] = value.redacted + (" (password set)" if value.password else "")
            elif isinstance(value, Secret):
                shown[var.name] = REDACTED if value.get() else "(unset)"
            elif isinstance(value, tuple):
                shown[var.name] = ",".join(value) or "(none)"
            elif isinstance(value, IrcEndpoint):
                shown[var.name] = value.url
            elif isinstance(value, dict):
                shown[var.name] = ",".join(f"{k}={v}" for k, v in value.items()) or "(none)"
            else:
                shown[var.name] = str(value)
        return shown


def _youtube_problems(values: Mapping[str, Any]) -> list[str]:
    """Settings of the YouTube group that contradict each other."""
    problems = []
    client_id, secret = values.get("yt_client_id"), values.get("yt_client_secret")
    if client_id and not (secret and secret.get()):
        problems.append("YT_CLIENT_SECRET: must be set when YT_CLIENT_ID is")
    if secret and secret.get() and not client_id:
        problems.append("YT_CLIENT_ID: must be set when YT_CLIENT_SECRET is")
    token = values.get("yt_refresh_token")
    if token and token.get():
        if not client_id:
            problems.append("YT_REFRESH_TOKEN: needs YT_CLIENT_ID and YT_CLIENT_SECRET")
        if values.get("encryption_key") is None and values.get("allow_plaintext_tokens") is False:
            problems.append(
                "ENCRYPTION_KEY: must be set to store YT_REFRESH_TOKEN (openssl rand -base64 32), "
                "or set ALLOW_PLAINTEXT_TOKENS=1 to store tokens unencrypted on purpose"
            )
    budgets, costs = values.get("youtube_quota_budgets"), values.get("youtube_quota_costs")
    if isinstance(budgets, dict) and isinstance(costs, dict):
        from vodarchiver.pipeline.quota import check_plan  # noqa: PLC0415

        problems += [f"YOUTUBE_QUOTA_COSTS: {p}" for p in check_plan(budgets, costs)]
    return problems


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every variable from `environ` and the optional env file.

    Raises ConfigError naming every bad variable; never prints a secret in the message.
    """
    problems: list[str] = []
    env_file_raw = environ.get("ENV_FILE", "").strip()
    env_file = Path(env_file_raw or ".env").expanduser()
    file_values: dict[str, str] = {}
    if env_file.exists():
        try:
            # No ${VAR} expansion: a password containing "$" must arrive exactly as written.
            values_read = dotenv_values(env_file, interpolate=False)
            file_values = {k: v for k, v in values_read.items() if v is not None}
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"ENV_FILE: cannot read {env_file}: {exc.__class__.__name__}")
    elif env_file_raw:
        problems.append(f"ENV_FILE: no such file: {env_file}")

    merged = {**file_values, **environ}
    values: dict[str, Any] = {}
    for var in VARIABLES:
        raw = merged.get(var.name)
        if raw is None or not raw.strip():
            raw = var.default
        if raw is None:
            values[var.attr] = None
            continue
        try:
            values[var.attr] = var.parse(raw)
        except ValueError as exc:
            problems.append(f"{var.name}: {exc}")

    pool_min, pool_max = values.get("database_pool_min_size"), values.get("database_pool_max_size")
    if isinstance(pool_min, int) and isinstance(pool_max, int) and pool_min > pool_max:
        problems.append(
            "DATABASE_POOL_MIN_SIZE: must not exceed DATABASE_POOL_MAX_SIZE "
            f"({pool_min} > {pool_max})"
        )
    client_id, secret = values.get("twitch_client_id"), values.get("twitch_client_secret")
    if client_id and not (secret and secret.get()):
        problems.append("TWITCH_CLIENT_SECRET: must be set when TWITCH_CLIENT_ID is")
    if secret and secret.get() and not client_id:
        problems.append("TWITCH_CLIENT_ID: must be set when TWITCH_CLIENT_SECRET is")
    problems += _youtube_problems(values)
    token = values.get("twitch_oauth_token")
    if token and token.get() and not values.get("twitch_bot_username"):
        problems.append("TWITCH_BOT_USERNAME: must be set when TWITCH_OAUTH_TOKEN is")
    if problems:
        raise ConfigError(problems)

    known = {var.name for var in VARIABLES}
    values["unknown_env_file_keys"] = tuple(
        sorted(k for k in file_values if k not in known and not k.startswith(_FOREIGN_PREFIXES))
    )
    return Settings(**values)
