"""The upload stage's pure decisions: tokens at rest, metadata, quota, breaker, split plans."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import pytest

from vodarchiver.media.splitter import cut_points, parts_needed
from vodarchiver.pipeline import breaker
from vodarchiver.pipeline.breaker import Circuit, CircuitState
from vodarchiver.pipeline.quota import (
    QuotaPlan,
    check_plan,
    next_reset,
    pacific_day,
    parse_budgets,
    parse_costs,
)
from vodarchiver.youtube import metadata
from vodarchiver.youtube.crypto import TokenCipher, TokenSealError, parse_key

KEY = os.urandom(32)


def facts(**changes: object) -> metadata.VodFacts:
    """A VOD's facts for the templates."""
    base: dict[str, object] = {
        "vod_id": "335921245", "channel": "alice", "title": "Speedrun <any%> practice",
        "created_at": datetime(2026, 11, 20, 21, 30, tzinfo=UTC),
        "url": "https://www.twitch.tv/videos/335921245", "duration_s": 3 * 3600 + 8 * 60 + 33,
        "muted_segments": [{"offset": 120, "duration": 30}, {"offset": 7200, "duration": 60}],
    }  # fmt: skip
    base.update(changes)
    return metadata.VodFacts(**base)  # type: ignore[arg-type]


def whole(f: metadata.VodFacts) -> metadata.PartSpan:
    """The one part of an unsplit VOD."""
    return metadata.PartSpan(1, 1, 0.0, float(f.duration_s))


# --- tokens at rest ----------------------------------------------------------------------------


def test_sealed_tokens_open_only_in_their_own_row() -> None:
    """AES-GCM with the row as associated data: a swapped row or another key does not open."""
    cipher = TokenCipher(KEY)
    sealed = cipher.seal(b"refresh-secret", provider="youtube", channel="")
    assert b"refresh-secret" not in sealed
    assert cipher.open(sealed, cipher.scheme, provider="youtube", channel="") == b"refresh-secret"
    with pytest.raises(TokenSealError, match="does not open"):
        cipher.open(sealed, cipher.scheme, provider="youtube", channel="bob")
    with pytest.raises(TokenSealError, match="does not open"):
        TokenCipher(os.urandom(32)).open(sealed, cipher.scheme, provider="youtube", channel="")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(TokenSealError):
        cipher.open(tampered, cipher.scheme, provider="youtube", channel="")
    with pytest.raises(TokenSealError, match="ENCRYPTION_KEY is not set"):
        TokenCipher(None).open(sealed, "aes-256-gcm", provider="youtube", channel="")


def test_two_seals_of_one_token_differ() -> None:
    """A fresh nonce each time: equal tokens do not give equal ciphertexts."""
    cipher = TokenCipher(KEY)
    one = cipher.seal(b"t", provider="youtube", channel="")
    two = cipher.seal(b"t", provider="youtube", channel="")
    assert one != two


def test_plaintext_mode_says_so() -> None:
    """Without a key the scheme is `plaintext`, and the value is stored as is."""
    cipher = TokenCipher(None)
    assert cipher.scheme == "plaintext"
    assert cipher.seal(b"t", provider="youtube", channel="") == b"t"


def test_encryption_key_must_be_base64_of_32_bytes() -> None:
    """Standard and URL-safe base64 are accepted; other lengths and garbage are refused."""
    assert parse_key(base64.b64encode(KEY).decode()) == KEY
    assert parse_key(base64.urlsafe_b64encode(KEY).decode().rstrip("=")) == KEY
    with pytest.raises(ValueError, match="32 bytes"):
        parse_key(base64.b64encode(os.urandom(16)).decode())
    with pytest.raises(ValueError, match="base64"):
        parse_key("not base64 at all!")


# --- metadata ----------------------------------------------------------------------------------


def test_title_and_description_follow_the_templates_and_youtube_rules() -> None:
    """Fields fill in, `<` and `>` are replaced, muted ranges are listed, the marker ends it."""
    f = facts()
    meta = metadata.build(f, whole(f), title_template="{title} - {channel} {date}",
                          description_template="{title}\nOn {date}, {duration}. {url}",
                          tags=["speedrun"])  # fmt: skip
    assert meta.title == "Speedrun \u2039any%\u203a practice - alice 2026-11-20"
    assert "<" not in meta.description
    assert ">" not in meta.description
    assert "On 2026-11-20, 3:08:33. https://www.twitch.tv/videos/335921245" in meta.description
    assert "0:02:00 - 0:02:30" in meta.description
    assert "2:00:00 - 2:01:00" in meta.description
    assert meta.description.endswith("[vodarchiver vod=335921245 part=1/1]")
    assert meta.tags[:2] == ("vodarchiver", "twitch-vod-335921245")
    assert "speedrun" in meta.tags


def test_long_values_are_cut_and_the_marker_survives() -> None:
    """100 characters of title with the part suffix, 5,000 bytes of description, 500 of tags."""
    f = facts(title="\u00e9" * 400)
    span = metadata.PartSpan(2, 3, 3600.0, 7200.0)
    meta = metadata.build(f, span, title_template="{title}",
                          description_template="{title}" * 20,
                          tags=[f"tag{n:03d}" for n in range(200)])  # fmt: skip
    assert len(meta.title) <= 100
    assert meta.title.endswith(" (Part 2/3)")
    assert len(meta.description.encode()) <= 5000
    assert meta.description.endswith(metadata.marker("335921245", 2, 3))
    assert sum(len(t) for t in meta.tags) + len(meta.tags) - 1 <= 500
    assert meta.tags[0] == "vodarchiver"


def test_muted_ranges_are_shown_relative_to_their_part() -> None:
    """A part lists only the muted stretches inside it, timed from its own start."""
    f = facts()
    meta = metadata.build(f, metadata.PartSpan(2, 2, 7000.0, 11313.0), title_template="{title}",
                          description_template="{part}/{parts}", tags=[])  # fmt: skip
    assert "0:03:20 - 0:04:20" in meta.description
    assert "0:02:00" not in meta.description


def test_template_errors_name_the_field() -> None:
    """An unknown field or a stray brace is refused at start-up, with the list of fields."""
    assert metadata.check_template("{title} {part}/{parts}") == "{title} {part}/{parts}"
    with pytest.raises(ValueError, match="unknown field"):
        metadata.check_template("{titel}")
    with pytest.raises(ValueError, match="not a valid template"):
        metadata.check_template("{title")


# --- quota -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        # Standard time: midnight Pacific is 08:00 UTC.
        (datetime(2026, 1, 15, 12, 0, tzinfo=UTC), datetime(2026, 1, 16, 8, 0, tzinfo=UTC)),
        # Daylight saving time: 07:00 UTC.
        (datetime(2026, 7, 1, 6, 59, tzinfo=UTC), datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),
        # The night DST starts (8 March 2026): the next midnight is already in PDT.
        (datetime(2026, 3, 8, 9, 0, tzinfo=UTC), datetime(2026, 3, 9, 7, 0, tzinfo=UTC)),
        # The night DST ends (1 November 2026): the next midnight is in PST again.
        (datetime(2026, 11, 1, 7, 30, tzinfo=UTC), datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
    ],
)
def test_quota_resets_at_the_next_pacific_midnight(now: datetime, reset: datetime) -> None:
    """Google's quota day ends at midnight in Los Angeles, daylight saving time included."""
    assert next_reset(now) == reset
    assert pacific_day(reset) == pacific_day(now) + timedelta(days=1)


def test_costs_and_budgets_express_both_of_googles_rules() -> None:
    """The old single bucket and the separate upload bucket are both plain settings."""
    old = QuotaPlan(parse_budgets("default=10000"), parse_costs(""))
    now = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    assert old.charge("videos.insert", now).units == 1600
    assert old.charge("playlistItems.insert", now).units == 50
    new = QuotaPlan(parse_budgets("default=10000,uploads=100"),
                    parse_costs("videos.insert=uploads:1"))  # fmt: skip
    charge = new.charge("videos.insert", now)
    assert (charge.bucket, charge.units, charge.budget) == ("uploads", 1, 100)
    assert charge.key == "youtube_quota_used:uploads:2026-11-23"
    assert check_plan(new.budgets, new.costs) == []
    assert check_plan({"default": 100}, parse_costs("videos.insert=uploads:1")) == [
        "videos.insert is charged to bucket 'uploads', which has no budget"
    ]
    assert check_plan({"default": 40}, parse_costs("")) == [
        "playlistItems.insert costs 50, more than bucket 'default' holds a day",
        "videos.delete costs 50, more than bucket 'default' holds a day",
        "videos.insert costs 1600, more than bucket 'default' holds a day",
    ]
    with pytest.raises(ValueError, match="unknown call"):
        parse_costs("videos.rate=default:50")
    with pytest.raises(ValueError, match="bucket=units"):
        parse_budgets("default:10000")


# --- breaker -----------------------------------------------------------------------------------

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
COOL = timedelta(minutes=15)


def test_breaker_opens_after_the_threshold_and_lets_one_probe_through() -> None:
    """Closed -> open after N failures -> one probe when the cooldown ends -> closed or open."""
    c = Circuit()
    for n in range(1, 3):
        c = breaker.on_failure(c, T0, threshold=3, cooldown=COOL)
        assert (c.state, c.failures) == (CircuitState.CLOSED, n)
    c = breaker.on_failure(c, T0, threshold=3, cooldown=COOL)
    assert c.state is CircuitState.OPEN
    assert c.open_until == T0 + COOL
    assert breaker.may_start(c, T0 + COOL / 2, COOL) == (False, c)
    allowed, probe = breaker.may_start(c, T0 + COOL, COOL)
    assert allowed
    assert probe.state is CircuitState.HALF_OPEN
    assert breaker.may_start(probe, T0 + COOL, COOL)[0] is False  # exactly one probe
    reopened = breaker.on_failure(probe, T0 + COOL, threshold=3, cooldown=COOL)
    assert reopened.state is CircuitState.OPEN
    assert reopened.open_until == T0 + 2 * COOL
    assert breaker.on_success(probe) == Circuit()


def test_a_probe_that_ended_without_a_verdict_frees_the_breaker_for_another() -> None:
    """Quota, auth or a shutdown during the probe: the next worker may probe at once."""
    _, probe = breaker.may_start(Circuit(CircuitState.OPEN, 5, T0), T0, COOL)
    freed = breaker.on_neutral(probe, T0 + timedelta(seconds=1))
    assert breaker.may_start(freed, T0 + timedelta(seconds=1), COOL)[0] is True


def test_breaker_keys_round_trip_and_deleted_keys_mean_closed() -> None:
    """The three kv keys; the runbook's recovery (deleting them) closes the breaker."""
    c = Circuit(CircuitState.OPEN, 5, T0)
    assert Circuit.from_kv(c.to_kv()) == c
    assert Circuit.from_kv({}) == Circuit()
    assert Circuit.from_kv({"circuit_state": "bogus", "circuit_failures": "x"}) == Circuit()


# --- split plans -------------------------------------------------------------------------------


def test_long_or_large_vods_get_the_fewest_parts_that_fit() -> None:
    """13 hours with an 11h55m limit is 2 parts; size can require more; cuts are equal."""
    limit = 11 * 3600 + 55 * 60
    assert parts_needed(13 * 3600, 10**9, max_duration_s=limit, max_bytes=256 * 2**30) == 2
    assert parts_needed(limit, 10**9, max_duration_s=limit, max_bytes=256 * 2**30) == 1
    assert parts_needed(3600, 300 * 2**30, max_duration_s=limit, max_bytes=256 * 2**30) == 2
    assert parts_needed(3600, 600 * 2**30, max_duration_s=limit, max_bytes=256 * 2**30) == 3
    assert cut_points(13 * 3600, 2) == [6.5 * 3600]
    assert cut_points(90.0, 3) == [30.0, 60.0]
