"""DATABASE_PASSWORD: a generated password reaches libpq intact, never through URL syntax."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from vodarchiver.config import Settings, load_settings
from vodarchiver.errors import ConfigError
from vodarchiver.values import REDACTED

AWKWARD = ["a/b+c=", "p@ss:w/rd?#", "sp ace'quote\"back\\slash", "100%encoded%2F"]


def load(**env: str) -> Settings:
    """Settings from exactly `env`, with no .env file."""
    return load_settings({"ENV_FILE": "/dev/null", **env})


@pytest.mark.parametrize("password", AWKWARD)
def test_any_password_reaches_libpq_exactly(password: str) -> None:
    """DATABASE_PASSWORD is a libpq parameter: every character arrives as written."""
    settings = load(
        DATABASE_URL="postgresql://vodarchiver_app@postgres:5432/vodarchiver",
        DATABASE_PASSWORD=password,
    )
    assert settings.database_url is not None
    params = conninfo_to_dict(settings.database_url.conninfo.get())
    assert params["password"] == password
    assert params["host"] == "postgres"
    assert params["user"] == "vodarchiver_app"
    assert params["dbname"] == "vodarchiver"


def test_the_password_replaces_one_written_in_the_url() -> None:
    """A password in the URL is overridden, so a stale one cannot win."""
    settings = load(DATABASE_URL="postgresql://u:old@db/x", DATABASE_PASSWORD="p@ss:w/rd?#")
    assert settings.database_url is not None
    assert conninfo_to_dict(settings.database_url.conninfo.get())["password"] == "p@ss:w/rd?#"


@pytest.mark.parametrize("password", ["a/b+c=", "p@ss:w/rd?#"])
def test_the_unescaped_url_compose_used_to_build_is_refused_with_a_hint(password: str) -> None:
    """Pasting such a password into the URL fails naming DATABASE_URL and pointing at DATABASE_PASSWORD."""
    with pytest.raises(ConfigError) as caught:
        load(DATABASE_URL=f"postgresql://vodarchiver:{password}@postgres:5432/vodarchiver")
    message = str(caught.value)
    assert "DATABASE_URL" in message
    assert "DATABASE_PASSWORD" in message
    assert password not in message


def test_a_password_without_a_url_is_a_config_error() -> None:
    """DATABASE_PASSWORD alone (the embedded server has its own) is rejected by name."""
    with pytest.raises(ConfigError, match="DATABASE_PASSWORD"):
        load(DATABASE_PASSWORD="x")


def test_the_password_is_a_secret_everywhere_it_shows() -> None:
    """`config` output redacts it; the log scrubber knows it; repr does not show it."""
    settings = load(DATABASE_URL="postgresql://u@db/x", DATABASE_PASSWORD="p@ss:w/rd?#")
    described = settings.describe()
    assert described["DATABASE_PASSWORD"] == REDACTED
    assert "p@ss:w/rd?#" not in str(described)
    assert "p@ss:w/rd?#" in settings.secret_values()
    assert "p@ss:w/rd?#" not in repr(settings)
