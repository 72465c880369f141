"""Settings: parsing, defaults, every problem reported at once, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from vodarchiver.config import VARIABLES, Settings, load_settings
from vodarchiver.errors import ConfigError
from vodarchiver.values import (
    REDACTED,
    HostPort,
    Secret,
    parse_database_url,
    parse_duration,
    parse_host_port,
)


def load(**env: str) -> Settings:
    """Settings from exactly `env`, with no .env file."""
    return load_settings({"ENV_FILE": "/dev/null", **env})


def test_defaults_with_an_empty_environment() -> None:
    """No variables at all gives the documented defaults and the embedded database."""
    settings = load_settings({"ENV_FILE": "/dev/null"})
    assert settings.database_url is None
    assert settings.data_dir == Path("data")
    assert settings.http_addr == HostPort("127.0.0.1", 8080)
    assert settings.log_level == "info"
    assert settings.log_format == "text"
    assert settings.database_connect_timeout_s == 10.0


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
    ],
)
def test_durations_accept_units(raw: str, seconds: float) -> None:
    """Durations take a bare number of seconds or ms/s/m/h/d parts."""
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["", "5x", "m5", "-3", "1h-2m", "5 m"])
def test_bad_durations_are_rejected(raw: str) -> None:
    """Anything else is a ValueError with the reason."""
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1:8080", HostPort("127.0.0.1", 8080)),
        ("localhost:0", HostPort("localhost", 0)),
        ("[::1]:9000", HostPort("::1", 9000)),
        (":8080", HostPort("0.0.0.0", 8080)),
    ],
)
def test_http_addr_forms(raw: str, expected: HostPort) -> None:
    """HOST:PORT, [IPv6]:PORT and :PORT are understood."""
    assert parse_host_port(raw) == expected


@pytest.mark.parametrize(
    "raw", ["notaport", "127.0.0.1", "127.0.0.1:99999", "[zz]:80", "a b:80", "host:port"]
)
def test_bad_http_addrs(raw: str) -> None:
    """Malformed addresses are rejected."""
    with pytest.raises(ValueError, match=r"HOST:PORT|port|address|host name"):
        parse_host_port(raw)


def test_every_bad_variable_is_reported_together() -> None:
    """One ConfigError lists each bad variable by name, not just the first."""
    with pytest.raises(ConfigError) as caught:
        load(
            HTTP_ADDR="notaport",
            LOG_LEVEL="loud",
            LOG_FORMAT="xml",
            DATABASE_POOL_MAX_SIZE="0",
            SHUTDOWN_TIMEOUT="soon",
        )
    named = {p.split(":", 1)[0] for p in caught.value.problems}
    assert named == {
        "HTTP_ADDR",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "DATABASE_POOL_MAX_SIZE",
        "SHUTDOWN_TIMEOUT",
    }
    assert "HTTP_ADDR" in str(caught.value)


def test_pool_bounds_must_be_ordered() -> None:
    """A pool minimum above its maximum is reported against DATABASE_POOL_MIN_SIZE."""
    with pytest.raises(ConfigError, match="DATABASE_POOL_MIN_SIZE"):
        load(DATABASE_POOL_MIN_SIZE="5", DATABASE_POOL_MAX_SIZE="2")


def test_database_url_password_is_a_secret() -> None:
    """The password is kept out of repr, str and the redacted form, and listed for scrubbing."""
    settings = load(DATABASE_URL="postgresql://arch:hunter2-pw@db.example:6543/vods")
    url = settings.database_url
    assert url is not None
    assert url.redacted == "postgresql://arch@db.example:6543/vods"
    assert "hunter2-pw" not in repr(settings)
    assert "hunter2-pw" not in str(settings.describe())
    assert "hunter2-pw" in settings.secret_values()
    assert url.conninfo.get().endswith("/vods")


def test_key_value_database_url_is_accepted() -> None:
    """A libpq key=value string works as well as a URL."""
    url = parse_database_url("host=10.0.0.5 port=5433 dbname=v user=u password=pw")
    assert url.redacted == "postgresql://u@10.0.0.5:5433/v"
    assert url.password == Secret("pw")


@pytest.mark.parametrize("raw", ["mysql://x", "postgresql://u:p@h:notaport/db", "host=a =b"])
def test_bad_database_urls_do_not_echo_the_value(raw: str) -> None:
    """An invalid DATABASE_URL is named, and its text (which may hold a password) is not repeated."""
    with pytest.raises(ConfigError) as caught:
        load(DATABASE_URL=raw)
    assert caught.value.problems[0].startswith("DATABASE_URL:")
    assert raw not in str(caught.value)


def test_secret_repr_is_redacted() -> None:
    """A Secret shows the redaction mark and only get() reveals it."""
    secret = Secret("tok")
    assert repr(secret) == f"Secret('{REDACTED}')"
    assert str(secret) == REDACTED
    assert secret.get() == "tok"


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    """Values come from the env file unless the environment sets them; unknown keys are noted."""
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        "LOG_LEVEL=debug\nLOG_FORMAT=json\nTWITCH_CHANEL=typo\nPOSTGRES_PASSWORD=x\n# a comment\n"
    )
    settings = load_settings({"ENV_FILE": str(env_file), "LOG_FORMAT": "text"})
    assert settings.log_level == "debug"
    assert settings.log_format == "text"
    assert settings.unknown_env_file_keys == ("TWITCH_CHANEL",)


def test_default_env_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ENV_FILE, ./.env is read when present and silently skipped when not."""
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).log_level == "info"
    (tmp_path / ".env").write_text("LOG_LEVEL=warn\n")
    assert load_settings({}).log_level == "warning"


def test_missing_named_env_file_is_an_error(tmp_path: Path) -> None:
    """An ENV_FILE that does not exist is reported by name."""
    with pytest.raises(ConfigError, match="ENV_FILE"):
        load_settings({"ENV_FILE": str(tmp_path / "nope.env")})


def test_empty_values_mean_default() -> None:
    """An empty variable (common in compose files) falls back to the default."""
    assert load(LOG_LEVEL="", HTTP_ADDR="  ").http_addr == HostPort("127.0.0.1", 8080)


def test_every_variable_has_a_valid_default() -> None:
    """Each declared default parses with its own parser."""
    for var in VARIABLES:
        if var.default is not None:
            var.parse(var.default)


@pytest.mark.parametrize("raw", ["inf", "nan", "1e400", "infinity", "400d"])
def test_durations_must_be_finite_and_sane(raw: str) -> None:
    """Infinite, NaN or absurd durations are refused (SHUTDOWN_TIMEOUT=inf would remove the bound)."""
    with pytest.raises(ConfigError, match="SHUTDOWN_TIMEOUT"):
        load(SHUTDOWN_TIMEOUT=raw)


def test_key_value_password_may_contain_a_url_like_text() -> None:
    """A key=value string is not mistaken for a URL because its password contains ://."""
    url = parse_database_url("host=db dbname=v password=a://b")
    assert url.password == Secret("a://b")


def test_percent_encoded_password_is_scrubbed_in_both_forms() -> None:
    """The password as written in the URL (p%40ss) and as decoded (p@ss) are both secrets."""
    settings = load(DATABASE_URL="postgresql://u:p%40ss-Word-1@h/db")
    assert {"p@ss-Word-1", "p%40ss-Word-1"} <= set(settings.secret_values())


def test_env_file_values_are_taken_literally(tmp_path: Path) -> None:
    """No ${VAR} expansion in .env: a password with $ arrives exactly as written."""
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=postgresql://u:pa${HOME}ss@h/db\n")
    settings = load_settings({"ENV_FILE": str(env_file), "HOME": "/root"})
    assert settings.database_url is not None
    assert settings.database_url.password == Secret("pa${HOME}ss")
