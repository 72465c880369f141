"""ADMIN_TOKEN and HTTP_ALLOWED_HOSTS: parsed, validated with the variable named, the token kept secret."""

from __future__ import annotations

import os

import pytest

from vodarchiver.config import load_settings
from vodarchiver.errors import ConfigError
from vodarchiver.values import REDACTED
from vodarchiver.webguard import GuardPolicy

TOKEN = "an-admin-token-of-32-characters!"


def test_admin_token_is_a_secret() -> None:
    """The token is redacted by `vodarchiver config`, listed for the log scrubber and absent from repr."""
    settings = load_settings({"ENV_FILE": os.devnull, "ADMIN_TOKEN": TOKEN})
    assert settings.describe()["ADMIN_TOKEN"] == REDACTED
    assert TOKEN in settings.secret_values()
    assert TOKEN not in repr(settings)
    assert GuardPolicy.from_settings(settings).token_required


def test_unset_admin_token_means_loopback_only() -> None:
    """Without ADMIN_TOKEN the policy needs no token and allows loopback names only plus the HTTP_ADDR host."""
    settings = load_settings({"ENV_FILE": os.devnull, "HTTP_ADDR": "0.0.0.0:8080"})
    assert settings.describe()["ADMIN_TOKEN"] == "(unset)"
    policy = GuardPolicy.from_settings(settings)
    assert not policy.token_required
    assert policy.allowed_hosts == {"localhost", "127.0.0.1", "::1"}


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ADMIN_TOKEN": "short-token"}, "ADMIN_TOKEN"),
        ({"ADMIN_TOKEN": "a token with spaces in it"}, "ADMIN_TOKEN"),
        ({"ADMIN_TOKEN": "tab\tseparated-token-value"}, "ADMIN_TOKEN"),
        ({"HTTP_ALLOWED_HOSTS": "example.com:8080"}, "HTTP_ALLOWED_HOSTS"),
        ({"HTTP_ALLOWED_HOSTS": "*.example.com"}, "HTTP_ALLOWED_HOSTS"),
        ({"HTTP_ALLOWED_HOSTS": "https://example.com"}, "HTTP_ALLOWED_HOSTS"),
    ],
)
def test_bad_values_name_the_variable_and_not_the_secret(
    env: dict[str, str], variable: str
) -> None:
    """A bad value is a ConfigError naming its variable, never echoing the token."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"ENV_FILE": os.devnull, **env})
    message = str(caught.value)
    assert variable in message
    if variable == "ADMIN_TOKEN":
        assert env["ADMIN_TOKEN"] not in message


def test_allowed_hosts_are_normalised() -> None:
    """Names are lower-cased, a trailing dot dropped, duplicates removed."""
    settings = load_settings({"ENV_FILE": os.devnull,
                              "HTTP_ALLOWED_HOSTS": "Archiver.Example.com., vodarchiver,archiver.example.com"})  # fmt: skip
    assert settings.http_allowed_hosts == ("archiver.example.com", "vodarchiver")
