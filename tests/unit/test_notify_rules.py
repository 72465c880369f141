"""The pure side of notifications: event settings, messages, retry delays, conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vodarchiver.config import load_settings
from vodarchiver.errors import ConfigError
from vodarchiver.notify.events import (
    Event,
    at_risk_due,
    at_risk_thresholds,
    delivery_delay,
    describe_target,
    parse_events,
    render,
    threshold_label,
    token_expiring_due,
    url_secrets,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_events_default_to_all_but_published_and_take_names_and_exclusions() -> None:
    """`all,-published` is the default; names and `-name` combine; an unknown name is refused."""
    assert parse_events("all,-published") == frozenset(Event) - {Event.PUBLISHED}
    assert parse_events("failed, at_risk") == {Event.FAILED, Event.AT_RISK}
    assert parse_events("") == frozenset()
    with pytest.raises(ValueError, match="unknown event 'publish'"):
        parse_events("publish")


def test_notify_urls_are_a_secret_checked_without_being_echoed() -> None:
    """A malformed NOTIFY_URLS entry is named by position, never printed; a good one is redacted in `config`."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"ENV_FILE": "/dev/null", "NOTIFY_URLS": "json://ok/x not-a-url-sekrit"})
    assert "NOTIFY_URLS: entry 2" in str(caught.value)
    assert "sekrit" not in str(caught.value)
    settings = load_settings({"ENV_FILE": "/dev/null", "NOTIFY_URLS": "discord://123/tok-abcdef"})
    assert "tok-abcdef" not in settings.describe()["NOTIFY_URLS"]
    assert "discord://123/tok-abcdef" in settings.secret_values()


def test_url_secrets_cover_tokens_in_paths_users_and_queries() -> None:
    """The parts of an Apprise URL that may be credentials are all listed for the scrubber."""
    found = url_secrets("tgram://bot123456:AAHtoken@telegram/?to=chat987654&format=text")
    assert "bot123456" in found
    assert "chat987654" in found
    assert "discord" in describe_target("discord://1/2")
    assert "tokenpart" not in describe_target("discord://1/tokenpart")


def test_every_event_renders_a_title_a_link_and_a_next_step() -> None:
    """Each event has a short title, the console link (VOD page or status) and `Next:`."""
    payload = {"title": "Big stream", "channel": "alice", "reason": "boom", "threshold": "48h",
               "expires_at": "2026-12-07T12:00:00+00:00", "state": "queued",
               "resume_at": "2026-12-06T08:00:00+00:00", "youtube_url": "https://youtu.be/x",
               "which": "app token", "free_gib": 1.0, "min_gib": 5.0, "age": "5d 0h",
               "lifetime": "7d 0h", "stream_id": "s1", "messages": 3, "circuit_failures": "5"}  # fmt: skip
    for event in Event:
        vod = "42" if event in (Event.PUBLISHED, Event.FAILED, Event.AT_RISK,
                                Event.GONE_UNARCHIVED) else None  # fmt: skip
        message = render(event, vod, payload, console_url="http://host:8080/")
        assert 0 < len(message.title) <= 120
        assert "?" not in message.title, (event, message.title)
        link = "http://host:8080/ui/vods/42" if vod else "http://host:8080/status"
        assert f"Console: {link}" in message.body
        assert "\nNext: " in message.body
        assert message.kind in {"info", "success", "warning", "failure"}
    failed = render(Event.FAILED, "42", payload, console_url="http://h")
    assert 'alice: "Big stream" (VOD 42)' in failed.body
    assert "Reason: boom" in failed.body


def test_delivery_delay_doubles_and_is_capped() -> None:
    """30 s, 60 s, 120 s... never more than the cap."""
    assert [delivery_delay(n, base_s=30) for n in (1, 2, 3)] == [30, 60, 120]
    assert delivery_delay(50, base_s=30, cap_s=3600) == 3600


def test_at_risk_fires_at_the_window_then_at_twelve_hours() -> None:
    """48h window: nothing at 50h left, 48h at 30h left, 12h at 11h left, nothing once expired."""
    thresholds = at_risk_thresholds(timedelta(hours=48))
    assert thresholds == [timedelta(hours=48), timedelta(hours=12)]
    assert at_risk_due(NOW + timedelta(hours=50), NOW, thresholds) is None
    assert at_risk_due(NOW + timedelta(hours=30), NOW, thresholds) == timedelta(hours=48)
    assert at_risk_due(NOW + timedelta(hours=11), NOW, thresholds) == timedelta(hours=12)
    assert at_risk_due(NOW - timedelta(hours=1), NOW, thresholds) is None
    assert at_risk_thresholds(timedelta(hours=6)) == [timedelta(hours=6)]
    assert threshold_label(timedelta(hours=48)) == "48h"
    assert threshold_label(timedelta(minutes=90)) == "90m"


def test_token_expiring_is_told_days_ahead_only_when_the_lifetime_is_known() -> None:
    """7d lifetime: told from 5 days old; a 1d lifetime: 12 hours ahead; unknown: never."""
    week = timedelta(days=7)
    assert token_expiring_due(NOW - timedelta(days=4), NOW, week) is None
    assert token_expiring_due(NOW - timedelta(days=5), NOW, week) == NOW + timedelta(days=2)
    day = timedelta(days=1)
    assert token_expiring_due(NOW - timedelta(hours=11), NOW, day) is None
    assert token_expiring_due(NOW - timedelta(hours=12), NOW, day) == NOW + timedelta(hours=12)
    assert token_expiring_due(NOW - timedelta(days=30), NOW, None) is None
