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


def _nonempty(raw: str) -> str:
    return raw.strip()


def _secret(raw: str) -> Secret:
    return Secret(raw.strip())


def _path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must not be empty")
    return Path(raw.strip()).expanduser()


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

GROUPS: tuple[str, ...] = ("Twitch", "YouTube", "Database", "Storage", "Media", "Pipeline", "HTTP",
                           "Logging", "Daemon")  # fmt: skip


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
    discovery_interval_s: float
    max_concurrent_downloads: int
    download_max_attempts: int
    download_backoff_base_s: float
    download_backoff_max_s: float
    download_concurrent_fragments: int
    download_rate_limit: str
    download_size_estimate_mbps: float
    disk_min_free_gb: float
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
            elif isinstance(value, dict):
                shown[var.name] = ",".join(f"{k}={v}" for k, v in value.items()) or "(none)"
            else:
                shown[var.name] = str(value)
        return shown


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
    if problems:
        raise ConfigError(problems)

    known = {var.name for var in VARIABLES}
    values["unknown_env_file_keys"] = tuple(
        sorted(k for k in file_values if k not in known and not k.startswith(_FOREIGN_PREFIXES))
    )
    return Settings(**values)
