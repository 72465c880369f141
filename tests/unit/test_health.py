"""The /status summary, computed from counts and kv values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vodarchiver.health import summarize
from vodarchiver.models import VodState

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def counts(**by_state: int) -> dict[VodState, int]:
    """Every state at zero except the ones given."""
    result = dict.fromkeys(VodState, 0)
    result.update({VodState(k): v for k, v in by_state.items()})
    return result


def test_buckets_follow_the_runbook() -> None:
    """Pending, errored and processed count the right states; others only appear by state."""
    doc = summarize(
        counts(
            queued=2,
            downloading=1,
            live=1,
            uploaded=5,
            failed_retryable=1,
            failed_permanent=2,
            gone=3,
        ),
        {},
        version="1.2.3",
        started_at=T0,
        now=T0 + timedelta(seconds=90),
    )
    assert (doc["pending"], doc["errored"], doc["processed"], doc["total"]) == (4, 3, 5, 15)
    assert doc["queue_depth"] == 4  # queued, downloading, failed_retryable; not live
    assert doc["by_state"]["gone"] == 3
    assert set(doc["by_state"]) == {s.value for s in VodState}
    assert doc["uptime_s"] == 90.0
    assert doc["version"] == "1.2.3"


def test_absent_subsystems_are_null() -> None:
    """With no kv values the breaker, averages and last run are null, not zero."""
    doc = summarize(counts(), {}, version="x", started_at=T0, now=T0)
    for key in ("circuit_state", "circuit_failures", "circuit_open_until", "avg_download_ms",
                "avg_upload_ms", "avg_total_ms", "last_process_run"):  # fmt: skip
        assert doc[key] is None, key


def test_kv_values_are_typed_and_garbage_is_null() -> None:
    """Averages become numbers, failures an integer; unparseable values become null."""
    kv = {"avg_download_ms": "1234.5", "avg_upload_ms": "nan", "avg_total_ms": "oops",
          "circuit_state": "open", "circuit_failures": "3", "last_process_run": "2026-11-23T10:00:00Z"}  # fmt: skip
    doc = summarize(counts(), kv, version="x", started_at=T0, now=T0)
    assert doc["avg_download_ms"] == 1234.5
    assert doc["avg_upload_ms"] is None
    assert doc["avg_total_ms"] is None
    assert doc["circuit_state"] == "open"
    assert doc["circuit_failures"] == 3
    assert doc["last_process_run"] == "2026-11-23T10:00:00Z"
