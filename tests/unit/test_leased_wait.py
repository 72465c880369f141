"""How long an idle leased worker sleeps: the next due work, the fallback poll, the unheard cap."""

from __future__ import annotations

import pytest

from vodarchiver.pipeline.leased import MIN_WAIT_S, UNHEARD_POLL_S, idle_wait, worker_wait


@pytest.mark.parametrize(
    ("due_s", "expected"),
    [(None, 60.0), (600.0, 60.0), (12.5, 12.5), (0.2, MIN_WAIT_S), (-3.0, MIN_WAIT_S)],
)
def test_an_idle_worker_sleeps_until_the_next_due_work_at_most_the_poll(
    due_s: float | None, expected: float
) -> None:
    """Nothing waiting: the poll; a retry or lease due sooner: until then, never a spin."""
    assert idle_wait(60.0, due_s) == expected


def test_without_wake_ups_the_worker_polls_every_few_seconds() -> None:
    """While the LISTEN connection is down the wait is capped; with it, the stage's wait holds."""
    assert worker_wait(60.0, heard=False) == UNHEARD_POLL_S == 5.0
    assert worker_wait(60.0, heard=True) == 60.0
    assert worker_wait(2.0, heard=False) == 2.0
