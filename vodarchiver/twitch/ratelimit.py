"""Twitch's rate-limit bucket, as its answers describe it. Pure: the caller passes the time.

Every Helix answer says how many points are left (`Ratelimit-Remaining`) and when the bucket is
full again (`Ratelimit-Reset`, Unix seconds). One RateLimit is shared by every channel, so the
daemon waits for the reset itself instead of earning a 429. Calls made concurrently each take a
point from what is left, so a burst cannot overdraw the last few points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Keep a few points for other callers of the same client id (a second replica, a human).
RESERVE = 2


@dataclass
class RateLimit:
    """What Twitch last told us about the bucket, minus what we spent since."""

    remaining: int | None = None
    reset_at: float | None = None  # Unix seconds

    def observe(self, headers: Mapping[str, str], now: float) -> None:
        """Take the bucket's state from an answer's headers (missing or bad headers: ignored)."""
        try:
            remaining = int(headers["ratelimit-remaining"])
            reset_at = float(headers["ratelimit-reset"])
        except (KeyError, ValueError):
            return
        remaining = max(0, remaining)
        if reset_at == self.reset_at and self.remaining is not None:
            # Same bucket window: an answer that arrives late must not undo points spent since.
            remaining = min(remaining, self.remaining)
        self.remaining, self.reset_at = remaining, reset_at
        if self.reset_at is not None and self.reset_at < now:
            self.reset_at = None

    def wait_s(self, now: float) -> float:
        """How long to wait before the next call: until the reset if the bucket is spent."""
        if self.remaining is None or self.remaining > RESERVE or self.reset_at is None:
            return 0.0
        return max(0.0, self.reset_at - now)

    def spend(self, now: float) -> None:
        """Count one call against the bucket; a reset that has passed refills it."""
        if self.reset_at is not None and now >= self.reset_at:
            self.remaining, self.reset_at = None, None
        if self.remaining is not None:
            self.remaining = max(0, self.remaining - 1)


def retry_after_s(headers: Mapping[str, str], now: float, default_s: float) -> float:
    """How long a 429 asks us to wait: until a future `Ratelimit-Reset`, else `Retry-After`,
    else the default."""
    reset = headers.get("ratelimit-reset")
    if reset is not None:
        try:
            if float(reset) > now:
                return float(reset) - now
        except ValueError:
            pass
    after = headers.get("retry-after")
    if after is not None:
        try:
            return max(0.0, float(after))
        except ValueError:
            pass
    return default_s
