"""Pure decisions of the chat stage: when a channel counts as live, and how offsets shift.

`next_live` folds one Helix `/streams` answer into a channel's state. Going live (or a new stream
id) starts recording at once; going offline needs two offline answers in a row *and* the grace
period since the first, so one flapping answer never stops a recorder. An unreadable answer
changes nothing. `shift_ms` is the reconciliation's arithmetic: an offset from the stream's start
plus (stream start - VOD start) is the offset into the VOD.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True)
class LiveStream:
    """A live stream as Helix reports it."""

    stream_id: str
    started_at: datetime


@dataclass(frozen=True)
class LiveState:
    """What the stage believes about one channel."""

    stream: LiveStream | None = None  # the stream being recorded
    offline_since: datetime | None = None  # first offline answer while recording
    offline_answers: int = 0


class Action(enum.Enum):
    """What the stage does after an answer."""

    NOTHING = "nothing"
    START = "start"  # open the placeholder, start the recorder
    SWITCH = "switch"  # a new stream id while recording: close the old placeholder, open a new
    STOP = "stop"  # close the placeholder, stop the recorder


UNKNOWN = object()  # Helix could not be read this time


def next_live(
    state: LiveState, answer: LiveStream | object | None, *, now: datetime, grace_s: float
) -> tuple[LiveState, Action]:
    """The channel's next state and what to do, from one answer (a stream, None, or UNKNOWN)."""
    if answer is UNKNOWN:
        return state, Action.NOTHING
    if isinstance(answer, LiveStream):
        if state.stream is None:
            return LiveState(answer), Action.START
        if answer.stream_id != state.stream.stream_id:
            return LiveState(answer), Action.SWITCH
        return LiveState(state.stream), Action.NOTHING
    if state.stream is None:
        return state, Action.NOTHING
    since = state.offline_since or now
    answers = state.offline_answers + 1
    if answers >= 2 and (now - since).total_seconds() >= grace_s:
        return LiveState(), Action.STOP
    return replace(state, offline_since=since, offline_answers=answers), Action.NOTHING


def shift_ms(stream_started_at: datetime, vod_started_at: datetime) -> int:
    """What to add to an offset from the stream's start to make it an offset into the VOD."""
    return round((stream_started_at - vod_started_at).total_seconds() * 1000)
