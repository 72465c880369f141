"""The runbook's circuit breaker for uploads, as pure transitions over its three `kv` keys.

`circuit_state` (`closed`, `open`, `half_open`), `circuit_failures` and `circuit_open_until`
live in PostgreSQL so every replica obeys one breaker; the store applies these transitions under
a transaction-level advisory lock. CIRCUIT_FAILURE_THRESHOLD consecutive upload failures (not
quota, not cancel, not auth) open it for CIRCUIT_OPEN_COOLDOWN. When the cooldown is over, the
first worker to ask turns it `half_open` and is the one probe; `circuit_open_until` then bounds
the probe, so a probe that died with its replica does not hold the breaker half open forever.
The probe's success closes the breaker, its failure opens it again. Absent keys (the runbook's
recovery deletes them) mean closed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta


class CircuitState(enum.StrEnum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Circuit:
    """The breaker's three values."""

    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    open_until: datetime | None = None

    @classmethod
    def from_kv(cls, kv: Mapping[str, str]) -> Circuit:
        """Read the `kv` keys; absent or unreadable values count as closed."""
        try:
            state = CircuitState(kv.get("circuit_state", "closed"))
        except ValueError:
            state = CircuitState.CLOSED
        try:
            failures = max(0, int(kv.get("circuit_failures", "0")))
        except ValueError:
            failures = 0
        try:
            until = datetime.fromisoformat(kv["circuit_open_until"])
        except (KeyError, ValueError):
            until = None
        if state is not CircuitState.CLOSED and (until is None or until.tzinfo is None):
            return cls(CircuitState.CLOSED, failures, None)
        return cls(state, failures, until)

    def to_kv(self) -> dict[str, str]:
        """The `kv` values; `circuit_open_until` is empty when closed."""
        return {
            "circuit_state": self.state.value,
            "circuit_failures": str(self.failures),
            "circuit_open_until": self.open_until.isoformat() if self.open_until else "",
        }

    def blocks(self, now: datetime) -> bool:
        """Whether an upload may not start now (before any probe is taken)."""
        if self.state is CircuitState.CLOSED:
            return False
        return self.open_until is not None and now < self.open_until


def may_start(circuit: Circuit, now: datetime, cooldown: timedelta) -> tuple[bool, Circuit]:
    """Whether an upload may start now, and the breaker afterwards (taking the probe)."""
    if circuit.state is CircuitState.CLOSED:
        return True, circuit
    if circuit.open_until is not None and now < circuit.open_until:
        return False, circuit  # open, or a probe is in flight
    return True, Circuit(CircuitState.HALF_OPEN, circuit.failures, now + cooldown)


def on_failure(circuit: Circuit, now: datetime, *, threshold: int, cooldown: timedelta) -> Circuit:
    """A counted upload failure: the probe's failure, or one more towards the threshold."""
    failures = circuit.failures + 1
    if circuit.state is CircuitState.HALF_OPEN or failures >= threshold:
        return Circuit(CircuitState.OPEN, failures, now + cooldown)
    return Circuit(circuit.state, failures, circuit.open_until)


def on_success(_: Circuit) -> Circuit:
    """An upload succeeded: closed, the count starts again."""
    return Circuit()


def on_neutral(circuit: Circuit, now: datetime) -> Circuit:
    """The attempt ended without a verdict (quota, auth, cancel, shutdown): free the probe."""
    if circuit.state is CircuitState.HALF_OPEN:
        return Circuit(CircuitState.HALF_OPEN, circuit.failures, now)
    return circuit
