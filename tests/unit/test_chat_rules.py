"""Pure chat decisions: liveness with flap tolerance, and the reconciliation shift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vodarchiver.pipeline.chat_rules import (
    UNKNOWN,
    Action,
    LiveState,
    LiveStream,
    next_live,
    shift_ms,
)

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
S1 = LiveStream("s1", T0)
S2 = LiveStream("s2", T0 + timedelta(hours=3))


def at(seconds: float) -> datetime:
    """T0 plus seconds."""
    return T0 + timedelta(seconds=seconds)


def test_live_starts_at_once_and_a_new_stream_id_switches() -> None:
    """The first live answer starts; the same stream does nothing; another id switches."""
    state, action = next_live(LiveState(), S1, now=at(0), grace_s=120)
    assert (state.stream, action) == (S1, Action.START)
    assert next_live(state, S1, now=at(30), grace_s=120)[1] is Action.NOTHING
    state, action = next_live(state, S2, now=at(60), grace_s=120)
    assert (state.stream, action) == (S2, Action.SWITCH)


def test_one_flapping_offline_answer_never_stops() -> None:
    """Offline then live again keeps recording, and the offline count starts over."""
    state, _ = next_live(LiveState(), S1, now=at(0), grace_s=0)
    state, action = next_live(state, None, now=at(30), grace_s=0)
    assert action is Action.NOTHING
    state, action = next_live(state, S1, now=at(60), grace_s=0)
    assert action is Action.NOTHING
    assert state.offline_answers == 0
    state, action = next_live(state, None, now=at(90), grace_s=0)
    assert action is Action.NOTHING


def test_offline_stops_after_two_answers_and_the_grace() -> None:
    """Stop needs a second offline answer at least grace_s after the first; unknown answers count for nothing."""
    state, _ = next_live(LiveState(), S1, now=at(0), grace_s=120)
    state, _ = next_live(state, None, now=at(30), grace_s=120)
    state, action = next_live(state, UNKNOWN, now=at(60), grace_s=120)
    assert action is Action.NOTHING
    state, action = next_live(state, None, now=at(90), grace_s=120)
    assert action is Action.NOTHING
    state, action = next_live(state, None, now=at(150), grace_s=120)
    assert action is Action.STOP
    assert state == LiveState()
    assert next_live(state, None, now=at(180), grace_s=120)[1] is Action.NOTHING


def test_shift_is_stream_start_minus_vod_start() -> None:
    """A VOD that started 2.5 s before the stream shifts offsets by +2,500 ms."""
    assert shift_ms(T0, T0 - timedelta(seconds=2.5)) == 2500
    assert shift_ms(T0, T0 + timedelta(seconds=1)) == -1000
