"""Pure decisions of the chat replay: where the next request starts, pacing, backoff, outcome.

Twitch publishes no rate limit for GQL, so the replay is paced (`CHAT_REPLAY_INTERVAL` between
the starts of two requests of one worker) and backs off on 429 and 5xx as the archivers that use
it do: a few tries with a growing, jittered wait, then the VOD is put back for later, never
failed. Since 2025 Twitch may refuse cursor requests (the integrity check) while offset requests
still work, so a refused cursor switches the rest of the run to offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

from vodarchiver.pipeline.backoff import backoff_s, retry_delay_s

MAX_TRIES = 5  # tries of one request before the VOD is put back (429, 5xx, network)
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
PUT_BACK_BASE_S = 300.0  # a VOD whose requests kept failing is asked again after this, doubling
PUT_BACK_CAP_S = 6 * 3600.0


@dataclass(frozen=True)
class Position:
    """Where a VOD's replay stands: the offset to resume from, the cursor to follow."""

    offset_s: int
    cursor: str | None
    cursor_refused: bool = False

    def request(self) -> tuple[int | None, str | None]:
        """(offset, cursor) of the next request: the cursor unless Twitch refuses cursors."""
        if self.cursor is not None and not self.cursor_refused:
            return None, self.cursor
        return self.offset_s, None


def after_page(
    position: Position, *, by_offset: bool, first_s: int | None, last_s: int | None,
    cursor: str | None,
) -> Position:  # fmt: skip
    """The position after a page whose comments ran from `first_s` to `last_s`.

    The resume offset is the last comment's second, not the one after: the rest of that second
    may be on the next page, and a message fetched twice is stored once. A page read by offset
    that did not get past the second it asked for (more comments in one second than a page
    holds) moves on one second, so the replay always progresses.
    """
    if last_s is None:
        return Position(position.offset_s, cursor or position.cursor, position.cursor_refused)
    requested = position.offset_s
    offset = last_s
    if by_offset and last_s <= requested and first_s is not None:
        offset = requested + 1
    return Position(max(offset, position.offset_s), cursor, position.cursor_refused)


def on_cursor_refused(position: Position) -> Position:
    """The integrity check refused a cursor request: continue from the last offset instead."""
    return Position(position.offset_s, None, cursor_refused=True)


def pace_wait_s(last_start: float | None, now: float, interval_s: float) -> float:
    """How long to wait before the next request so two starts are `interval_s` apart."""
    if last_start is None or interval_s <= 0:
        return 0.0
    return max(0.0, last_start + interval_s - now)


def retry_wait_s(tries: int, *, retry_after_s: float | None, draw: float) -> float | None:
    """Wait before retrying a failed request (429/5xx/network); None: put the VOD back."""
    if tries >= MAX_TRIES:
        return None
    wait = backoff_s(tries, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S, draw=draw)
    return max(wait, BACKOFF_BASE_S / 2, retry_after_s or 0.0)


def put_back_s(attempts: int) -> float:
    """When a VOD whose requests kept failing is tried again (transient, not unavailable)."""
    return retry_delay_s(max(1, attempts), base_s=PUT_BACK_BASE_S, cap_s=PUT_BACK_CAP_S)
