"""Capped exponential backoff with full jitter. Pure: the caller passes the random draw."""

from __future__ import annotations


def backoff_s(attempt: int, *, base_s: float, cap_s: float, draw: float) -> float:
    """Delay before retry `attempt` (from 1): uniform in [0, min(cap, base * 2^(attempt-1))].

    `draw` is a number in [0, 1) from the caller's random source; full jitter spreads the retries
    of many clients that failed together.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap_s, base_s * 2.0 ** (attempt - 1))
    return ceiling * min(max(draw, 0.0), 1.0)


def retry_delay_s(failures: int, *, base_s: float, cap_s: float) -> float:
    """Wait before the next attempt after `failures` failed ones: base, 2x base, 4x ... capped."""
    if failures < 1:
        return 0.0
    return float(min(cap_s, base_s * 2.0 ** min(failures - 1, 62)))
