"""Chat completeness of a VOD, from which sources saw chat in each of its minutes. Pure.

A minute is covered when at least one source (live IRC, GQL replay) stored a message in it. The
figure is covered minutes over the VOD's minutes; the minutes only one source saw show where the
other missed (a dropped IRC link, or a replay Twitch refused). A gap is a run of minutes with no
chat from any source: a link that dropped and no replay filled. A quiet minute cannot be told from
a lost one, so a channel with silent stretches shows them as gaps too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LIVE = 1
REPLAY = 2


@dataclass(frozen=True)
class Coverage:
    """A VOD's chat coverage, minute by minute."""

    minutes: int
    covered: int
    live: int
    replay: int
    only_live: int
    only_replay: int
    live_ranges: tuple[tuple[int, int], ...]  # [start, end) in minutes
    replay_ranges: tuple[tuple[int, int], ...]
    gaps: tuple[tuple[int, int], ...]

    @property
    def ratio(self) -> float:
        """Covered minutes over the VOD's minutes (0 for a VOD without minutes)."""
        return self.covered / self.minutes if self.minutes else 0.0

    def as_json(self) -> dict[str, object]:
        """The `chat_coverage` object of `GET /vods/{id}`."""
        return {
            "minutes": self.minutes,
            "covered_minutes": self.covered,
            "coverage": round(self.ratio, 4),
            "live_minutes": self.live,
            "replay_minutes": self.replay,
            "only_live_minutes": self.only_live,
            "only_replay_minutes": self.only_replay,
            "sources": {
                "live": [_range(r) for r in self.live_ranges],
                "replay": [_range(r) for r in self.replay_ranges],
            },
            "gaps": [_range(r) for r in self.gaps],
        }


def _range(minutes: tuple[int, int]) -> dict[str, object]:
    start, end = minutes
    return {"from_s": start * 60, "to_s": end * 60, "from": _clock(start), "to": _clock(end)}


def _clock(minute: int) -> str:
    return f"{minute // 60}:{minute % 60:02d}:00"


def ranges(flags: Sequence[bool]) -> tuple[tuple[int, int], ...]:
    """Runs of true values as [start, end) index pairs."""
    found: list[tuple[int, int]] = []
    start: int | None = None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            found.append((start, i))
            start = None
    if start is not None:
        found.append((start, len(flags)))
    return tuple(found)


def summarize(masks: Sequence[int]) -> Coverage:
    """Coverage from each minute's source mask (bit 1 live, bit 2 replay)."""
    live = [bool(m & LIVE) for m in masks]
    replay = [bool(m & REPLAY) for m in masks]
    return Coverage(
        minutes=len(masks),
        covered=sum(1 for m in masks if m),
        live=sum(live),
        replay=sum(replay),
        only_live=sum(1 for m in masks if m & 3 == LIVE),
        only_replay=sum(1 for m in masks if m & 3 == REPLAY),
        live_ranges=ranges(live),
        replay_ranges=ranges(replay),
        gaps=ranges([not m for m in masks]),
    )
