"""Chat leases' pure decisions: which slot a replica may take, when it looks again; the settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vodarchiver.config import load_settings
from vodarchiver.db.chat_lease_store import LeaseRow
from vodarchiver.errors import ConfigError
from vodarchiver.pipeline.chat_leases import MIN_WAIT_S, next_wait_s, slots_to_try

T = datetime(2026, 12, 6, tzinfo=UTC)


def row(channel: str, slot: int, owner: str, *, valid: bool = True) -> LeaseRow:
    """A lease row as the database lists it."""
    return LeaseRow(channel, slot, owner, T, T, valid, 3.0 if valid else -1.0)


def test_a_free_channel_offers_every_slot_in_order() -> None:
    """No row: slot 0 first, then the others up to CHAT_REDUNDANCY."""
    assert slots_to_try([], "alice", 1, "me") == [0]
    assert slots_to_try([], "alice", 2, "me") == [0, 1]


def test_running_leases_are_never_offered_lapsed_ones_are() -> None:
    """Another replica's running lease is skipped; a lapsed one is offered; other channels do not count."""
    rows = [row("alice", 0, "other"), row("alice", 1, "dead", valid=False), row("bob", 0, "x")]
    assert slots_to_try(rows, "alice", 1, "me") == []
    assert slots_to_try(rows, "alice", 2, "me") == [1]
    assert slots_to_try(rows, "bob", 2, "me") == [1]


def test_a_replica_never_takes_a_second_slot_of_a_channel() -> None:
    """A row of ours (running or not) means renew it, never take another slot."""
    assert slots_to_try([row("alice", 1, "me", valid=False)], "alice", 3, "me") == []
    assert slots_to_try([row("alice", 0, "me")], "alice", 2, "me") == []


def test_the_next_pass_comes_at_the_first_deadline_or_expiry_we_wait_for() -> None:
    """A third of the lease, sooner for a local deadline or another's lease running out, never below the floor."""
    assert next_wait_s(lease_s=6, deadlines=[], waiting_for=[]) == 2
    assert next_wait_s(lease_s=6, deadlines=[5.0], waiting_for=[0.7]) == 0.7
    assert next_wait_s(lease_s=6, deadlines=[0.4], waiting_for=[3.0]) == 0.4
    assert next_wait_s(lease_s=6, deadlines=[-1.0], waiting_for=[]) == MIN_WAIT_S


def test_chat_redundancy_and_lease_settings() -> None:
    """Defaults 1 and 6s; CHAT_REDUNDANCY 1..8 and CHAT_LEASE 1s..10m, each error naming its variable."""
    settings = load_settings({"ENV_FILE": "/dev/null"})
    assert (settings.chat_redundancy, settings.chat_lease_s) == (1, 6.0)
    settings = load_settings(
        {"ENV_FILE": "/dev/null", "CHAT_REDUNDANCY": "2", "CHAT_LEASE": "2.5s"}
    )
    assert (settings.chat_redundancy, settings.chat_lease_s) == (2, 2.5)
    with pytest.raises(ConfigError) as caught:
        load_settings({"ENV_FILE": "/dev/null", "CHAT_REDUNDANCY": "0", "CHAT_LEASE": "200ms"})
    assert "CHAT_REDUNDANCY" in str(caught.value)
    assert "CHAT_LEASE" in str(caught.value)
