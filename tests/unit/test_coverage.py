"""Chat coverage: the figure, the minutes only one source saw, and gaps as time ranges."""

from __future__ import annotations

from vodarchiver.pipeline.coverage import ranges, summarize


def test_runs_become_half_open_ranges() -> None:
    """True runs become [start, end) pairs, including one that reaches the end."""
    assert ranges([True, True, False, True]) == ((0, 2), (3, 4))
    assert ranges([]) == ()
    assert ranges([False, False]) == ()


def test_a_dropped_link_partly_filled_by_replay() -> None:
    """Live 0-19 and 40-59, replay 0-29: 50 of 60 minutes, gap 30-40, 10 only-replay minutes."""
    masks = [3] * 20 + [2] * 10 + [0] * 10 + [1] * 20
    found = summarize(masks)
    assert (found.minutes, found.covered, found.only_live, found.only_replay) == (60, 50, 20, 10)
    assert abs(found.ratio - 50 / 60) < 1e-9
    shown = found.as_json()
    assert shown["gaps"] == [{"from_s": 1800, "to_s": 2400, "from": "0:30:00", "to": "0:40:00"}]
    assert shown["sources"] == {
        "live": [{"from_s": 0, "to_s": 1200, "from": "0:00:00", "to": "0:20:00"},
                 {"from_s": 2400, "to_s": 3600, "from": "0:40:00", "to": "1:00:00"}],
        "replay": [{"from_s": 0, "to_s": 1800, "from": "0:00:00", "to": "0:30:00"}],
    }  # fmt: skip
    assert shown["coverage"] == 0.8333
