"""Retention decisions with an injected clock: what goes, when, and what never does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from vodarchiver.config import load_settings
from vodarchiver.errors import ConfigError
from vodarchiver.pipeline.retention_rules import (
    SETTLE,
    RetentionPolicy,
    VodDir,
    VodFacts,
    decide,
    effective_keep_days,
    is_vod_dir,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
GB = 2**30
STILL_NEEDED = ("live", "queued", "waiting_for_disk", "downloading", "downloaded",
                "waiting_for_auth", "uploading", "failed_retryable", "placeholder")  # fmt: skip


def vod_dir(vod_id: str, size: int = GB, age: timedelta = timedelta(days=30)) -> VodDir:
    """A directory of alice's last modified `age` ago."""
    return VodDir("alice", vod_id, size, NOW - age)


def facts(vod_id: str, state: str, days_ago: float = 0, *, processed: bool = True) -> VodFacts:
    """A VOD that entered `state` (and was uploaded, if it is) `days_ago`."""
    at = NOW - timedelta(days=days_ago)
    return VodFacts(vod_id, state, at, at if state == "uploaded" else None,
                    processed and state == "uploaded")  # fmt: skip


def ids(removals: list) -> list[str]:  # type: ignore[type-arg]
    """The VOD ids removed, in order."""
    return [r.dir.vod_id for r in removals]


def test_keep_days_zero_removes_an_uploaded_vod_at_once_and_n_days_after() -> None:
    """0: removed as soon as it is uploaded; 7: kept 7 days after the upload, then removed."""
    dirs = [vod_dir("1"), vod_dir("2")]
    vods = {"1": facts("1", "uploaded", 0), "2": facts("2", "uploaded", 8)}
    assert ids(decide(dirs, vods, RetentionPolicy(0, None, None), NOW, database_has_vods=True)) == [
        "1",
        "2",
    ]
    week = RetentionPolicy(7, None, None)
    assert ids(decide(dirs, vods, week, NOW, database_has_vods=True)) == ["2"]
    later = NOW + timedelta(days=7)
    assert ids(decide(dirs, vods, week, later, database_has_vods=True)) == ["1", "2"]
    assert decide(dirs, vods, RetentionPolicy(None, None, None), NOW, database_has_vods=True) == []


def test_max_gb_removes_the_oldest_uploaded_first_until_under() -> None:
    """Over the cap, the oldest uploads go first, only as many as needed; needed VODs count but stay."""
    dirs = [vod_dir("new"), vod_dir("old"), vod_dir("mid"), vod_dir("busy", size=3 * GB)]
    vods = {"new": facts("new", "uploaded", 1), "old": facts("old", "uploaded", 9),
            "mid": facts("mid", "uploaded", 5), "busy": facts("busy", "downloading")}  # fmt: skip
    policy = RetentionPolicy(None, 5 * GB, None)
    assert ids(decide(dirs, vods, policy, NOW, database_has_vods=True)) == ["old"]
    policy = RetentionPolicy(None, 1 * GB, None)
    assert ids(decide(dirs, vods, policy, NOW, database_has_vods=True)) == ["old", "mid", "new"]


def test_failed_canceled_skipped_and_gone_go_after_failed_days() -> None:
    """Terminal failures keep their files RETENTION_FAILED_DAYS from when they entered the state."""
    dirs = [vod_dir(str(n)) for n in range(5)]
    states = ["failed_permanent", "canceled", "skipped", "gone", "skipped_restricted"]
    vods = {str(n): facts(str(n), s, 10) for n, s in enumerate(states)}
    assert decide(dirs, vods, RetentionPolicy(0, None, 30), NOW, database_has_vods=True) == []
    later = NOW + timedelta(days=20)
    assert ids(decide(dirs, vods, RetentionPolicy(0, None, 30), later, database_has_vods=True)) == [
        "0", "1", "2", "3", "4"]  # fmt: skip
    assert decide(dirs, vods, RetentionPolicy(0, None, None), later, database_has_vods=True) == []


@pytest.mark.parametrize("state", STILL_NEEDED)
def test_a_vod_still_needed_is_never_removed_whatever_the_policy(state: str) -> None:
    """Downloading, uploading, queued with fragments... no rule and no cap ever touches it."""
    dirs = [vod_dir("9", size=100 * GB, age=timedelta(days=400))]
    vods = {"9": facts("9", state, 400)}
    policy = RetentionPolicy(0, 1, 0)
    assert decide(dirs, vods, policy, NOW + timedelta(days=1000), database_has_vods=True) == []


def test_an_uploaded_row_not_yet_processed_is_kept() -> None:
    """`uploaded` without processed=1 (not every part confirmed) is not removed."""
    vods = {"1": facts("1", "uploaded", 3, processed=False)}
    assert (
        decide([vod_dir("1")], vods, RetentionPolicy(0, None, None), NOW, database_has_vods=True)
        == []
    )


def test_orphans_go_after_the_grace_and_only_if_the_database_knows_vods() -> None:
    """A directory no row owns goes an hour after its last change; never with an empty database."""
    fresh, stale = vod_dir("77", age=timedelta(minutes=10)), vod_dir("78", age=timedelta(hours=2))
    policy = RetentionPolicy(None, None, None)
    assert ids(decide([fresh, stale], {}, policy, NOW, database_has_vods=True)) == ["78"]
    assert decide([fresh, stale], {}, policy, NOW, database_has_vods=False) == []


def test_only_channel_and_vod_shaped_directories_are_candidates() -> None:
    """`postgres` (the embedded database) and names that are not logins or VOD ids are left alone."""
    assert is_vod_dir("alice", "123", known=False)
    assert not is_vod_dir("postgres", "123", known=True)
    assert not is_vod_dir("Alice Stuff", "123", known=False)
    assert not is_vod_dir("alice", "notes", known=False)
    assert is_vod_dir("alice", "v-abc", known=True)


def test_delete_after_upload_is_the_older_form_of_keep_days() -> None:
    """RETENTION_KEEP_DAYS wins; unset, DELETE_AFTER_UPLOAD=1 means 0 days and 0 means forever."""
    assert effective_keep_days(None, True) == 0
    assert effective_keep_days(None, False) is None
    assert effective_keep_days(3, True) == 3
    settings = load_settings({"ENV_FILE": "/dev/null", "RETENTION_KEEP_DAYS": "7",
                              "RETENTION_MAX_GB": "500", "RETENTION_FAILED_DAYS": "never"})  # fmt: skip
    assert (settings.retention_keep_days, settings.retention_max_gb) == (7, 500)
    assert settings.retention_failed_days is None
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"ENV_FILE": "/dev/null", "RETENTION_KEEP_DAYS": "-1", "RETENTION_MAX_GB": "0"}
        )
    assert "RETENTION_KEEP_DAYS" in str(caught.value)
    assert "RETENTION_MAX_GB" in str(caught.value)


def test_a_leased_vod_is_never_removed_while_the_lease_runs() -> None:
    """A worker's live lease keeps any VOD's files (even uploaded with keep 0); a lapsed one does not."""
    dirs = [vod_dir("1"), vod_dir("2")]
    lease = NOW + timedelta(seconds=40)
    vods = {
        "1": replace(facts("1", "uploaded", 0), claim_until=lease),
        "2": replace(facts("2", "canceled", 40), claim_until=lease),
    }
    policy = RetentionPolicy(0, 1, 0)
    assert decide(dirs, vods, policy, NOW, database_has_vods=True) == []
    later = NOW + timedelta(seconds=41)
    assert ids(decide(dirs, vods, policy, later, database_has_vods=True)) == ["1", "2"]


@pytest.mark.parametrize("state", ["failed_permanent", "canceled", "skipped"])
def test_a_vod_stopped_moments_ago_keeps_its_files_for_the_settle_time(state: str) -> None:
    """RETENTION_FAILED_DAYS=0 still waits SETTLE: another replica's worker may not have noticed the cancel yet."""
    dirs = [vod_dir("1")]
    vods = {"1": facts("1", state, 0)}
    policy = RetentionPolicy(None, None, 0)
    assert decide(dirs, vods, policy, NOW + SETTLE - timedelta(seconds=1),
                  database_has_vods=True) == []  # fmt: skip
    assert ids(decide(dirs, vods, policy, NOW + SETTLE, database_has_vods=True)) == ["1"]
