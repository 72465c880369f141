"""Chat settings: the IRC endpoint, the token and its login, when chat is on."""

from __future__ import annotations

import pytest

from vodarchiver.config import Settings, load_settings
from vodarchiver.errors import ConfigError
from vodarchiver.values import REDACTED, parse_irc_url


def load(**env: str) -> Settings:
    """Settings from exactly `env`, with no .env file."""
    return load_settings({"ENV_FILE": "/dev/null", **env})


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "websocket"),
    [
        ("wss://irc-ws.chat.twitch.tv:443", "irc-ws.chat.twitch.tv", 443, True, True),
        ("ws://127.0.0.1:8765", "127.0.0.1", 8765, False, True),
        ("ircs://irc.chat.twitch.tv", "irc.chat.twitch.tv", 6697, True, False),
        ("irc://127.0.0.1", "127.0.0.1", 6667, False, False),
    ],
)
def test_irc_urls_of_every_scheme(
    url: str, host: str, port: int, tls: bool, websocket: bool
) -> None:
    """Each accepted scheme gives its host, default port, TLS and transport."""
    endpoint = parse_irc_url(url)
    assert (endpoint.host, endpoint.port, endpoint.tls, endpoint.websocket) == (
        host,
        port,
        tls,
        websocket,
    )


def test_bad_chat_settings_name_their_variable_and_never_show_the_token() -> None:
    """A wrong URL, a token without a login and a slow flush are reported together, token hidden."""
    with pytest.raises(ConfigError) as caught:
        load(TWITCH_IRC_URL="http://x", TWITCH_OAUTH_TOKEN="oauth:sekrit123",
             CHAT_FLUSH_INTERVAL="2s", CHAT_AUTO_START="maybe")  # fmt: skip
    text = str(caught.value)
    assert "TWITCH_IRC_URL:" in text
    assert "TWITCH_BOT_USERNAME: must be set when TWITCH_OAUTH_TOKEN is" in text
    assert "CHAT_FLUSH_INTERVAL:" in text
    assert "CHAT_AUTO_START:" in text
    assert "sekrit123" not in text


def test_token_prefix_is_stripped_and_redacted_everywhere() -> None:
    """`oauth:` is optional; the token is a secret in describe() and secret_values()."""
    settings = load(TWITCH_BOT_USERNAME="MyBot", TWITCH_OAUTH_TOKEN="oauth:abc123")
    assert settings.twitch_oauth_token is not None
    assert settings.twitch_oauth_token.get() == "abc123"
    assert settings.twitch_bot_username == "mybot"
    assert settings.describe()["TWITCH_OAUTH_TOKEN"] == REDACTED
    assert "abc123" in settings.secret_values()
    assert "abc123" not in repr(settings)


def test_when_chat_is_on() -> None:
    """Manual form needs TWITCH_CHANNEL; auto start needs channels and Helix credentials."""
    assert load().chat_off_reason() is not None
    assert load(TWITCH_CHANNEL="alice").chat_off_reason() is None
    reason = load(CHAT_AUTO_START="1", TWITCH_CHANNELS="alice").chat_off_reason()
    assert reason is not None
    assert "TWITCH_CLIENT_ID" in reason
    on = load(CHAT_AUTO_START="1", TWITCH_CHANNELS="alice", TWITCH_CLIENT_ID="i",
              TWITCH_CLIENT_SECRET="s")  # fmt: skip
    assert on.chat_off_reason() is None
    assert on.chat_poll_interval_s == 30.0
    assert on.vod_reconcile_window_s == 900.0
