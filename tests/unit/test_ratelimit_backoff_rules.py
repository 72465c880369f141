"""Pure decisions: Twitch's bucket, backoff, retention windows and liveness."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vodarchiver.pipeline.backoff import backoff_s
from vodarchiver.pipeline.rules import expires_at, retention_days, still_live
from vodarchiver.twitch.ratelimit import RESERVE, RateLimit, retry_after_s

NOW = 1_800_000_000.0


def test_no_headers_no_wait() -> None:
    """Before any answer, nothing is known and nothing waits."""
    assert RateLimit().wait_s(NOW) == 0.0


def test_spent_bucket_waits_until_reset() -> None:
    """Remaining at or below the reserve waits for Ratelimit-Reset; a passed reset refills."""
    limit = RateLimit()
    limit.observe({"ratelimit-remaining": "0", "ratelimit-reset": str(int(NOW + 7))}, NOW)
    assert limit.wait_s(NOW) == pytest.approx(7.0)
    limit.spend(NOW + 8)
    assert limit.wait_s(NOW + 8) == 0.0


def test_concurrent_spending_reaches_the_reserve() -> None:
    """Points are spent locally between answers, so a burst stops at the reserve."""
    limit = RateLimit()
    limit.observe(
        {"ratelimit-remaining": str(RESERVE + 3), "ratelimit-reset": str(int(NOW + 30))}, NOW
    )
    waits = []
    for _ in range(5):
        waits.append(limit.wait_s(NOW))
        limit.spend(NOW)
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(30.0)


def test_garbage_headers_are_ignored() -> None:
    """Non-numeric headers do not break the limiter."""
    limit = RateLimit()
    limit.observe({"ratelimit-remaining": "lots", "ratelimit-reset": "soon"}, NOW)
    assert limit.wait_s(NOW) == 0.0


def test_429_waits_for_reset_then_retry_after_then_default() -> None:
    """A 429 waits until a future Ratelimit-Reset, else Retry-After, else the default; a reset already past is no excuse for a burst."""
    assert retry_after_s({"ratelimit-reset": str(int(NOW + 2))}, NOW, 5.0) == pytest.approx(2.0)
    assert retry_after_s({"retry-after": "3"}, NOW, 5.0) == 3.0
    assert retry_after_s({}, NOW, 5.0) == 5.0
    assert retry_after_s({"ratelimit-reset": str(int(NOW - 10))}, NOW, 5.0) == 5.0
    assert retry_after_s({"ratelimit-reset": str(int(NOW)), "retry-after": "2"}, NOW, 5.0) == 2.0


def test_a_late_answer_does_not_refund_spent_points() -> None:
    """Within one bucket window the lower count wins, so an old answer cannot undo later spending."""
    limit = RateLimit()
    reset = str(int(NOW + 30))
    limit.observe({"ratelimit-remaining": "10", "ratelimit-reset": reset}, NOW)
    for _ in range(8):
        limit.spend(NOW)
    limit.observe(
        {"ratelimit-remaining": "9", "ratelimit-reset": reset}, NOW
    )  # sent before the burst
    assert limit.remaining == 2
    limit.observe(
        {"ratelimit-remaining": "799", "ratelimit-reset": str(int(NOW + 90))}, NOW
    )  # new window
    assert limit.remaining == 799


def test_backoff_grows_and_is_capped() -> None:
    """The ceiling doubles per attempt up to the cap; the draw scales within it."""
    assert [
        backoff_s(a, base_s=1, cap_s=10, draw=0.999999) for a in (1, 2, 3, 4, 5)
    ] == pytest.approx([1, 2, 4, 8, 10], rel=1e-5)
    assert backoff_s(3, base_s=1, cap_s=10, draw=0.0) == 0.0
    with pytest.raises(ValueError, match="from 1"):
        backoff_s(0, base_s=1, cap_s=10, draw=0.5)


@pytest.mark.parametrize(
    ("kind", "days"), [("partner", 60), ("affiliate", 14), ("", 7), ("unknown-new-type", 7)]
)
def test_retention_by_broadcaster_type(kind: str, days: int) -> None:
    """Partners 60 days, affiliates 14, everyone else 7."""
    assert retention_days("alice", kind, {}) == days


def test_retention_override_wins() -> None:
    """A per-channel setting beats the broadcaster type."""
    assert retention_days("alice", "partner", {"alice": 30}) == 30
    assert expires_at(datetime(2026, 11, 1, tzinfo=UTC), 14) == datetime(2026, 11, 15, tzinfo=UTC)


def test_liveness() -> None:
    """Live when its stream is live or its duration grew; unknown only without /streams and growth."""
    live = frozenset({"s1"})
    assert still_live("s1", live, 100, None) is True
    assert still_live("s2", live, 100, None) is False
    assert still_live("s2", live, 150, 100) is True  # /streams lags, the duration still grows
    assert still_live("s2", live, 100, 100) is False
    assert still_live("s2", None, 100, 100) is None
    assert still_live("s2", None, 120, 100) is True
    assert still_live(None, live, 100, None) is False
