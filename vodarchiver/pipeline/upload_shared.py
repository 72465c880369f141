"""What every replica's upload workers share through PostgreSQL: the pause, the breaker, the quota.

The pause (`kv` `uploads_paused_until`, `uploads_paused_reason`) is set by `quotaExceeded` or
`uploadLimitExceeded` and obeyed by every worker of every replica. The breaker is the runbook's
three `kv` keys, moved by the pure transitions of `breaker.py` under a transaction-level advisory
lock. The day's quota is read back from the units the planner charged, for `/status` and the
`youtube_quota_*` gauges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from vodarchiver.db.uploads import UploadStore
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.logs import get_logger
from vodarchiver.metrics import Metrics
from vodarchiver.models import CheckResult
from vodarchiver.pipeline import breaker
from vodarchiver.pipeline.quota import QuotaPlan, pacific_day, used_key

PAUSE_KEYS = ("uploads_paused_until", "uploads_paused_reason")
CIRCUIT_KEYS = ("circuit_state", "circuit_failures", "circuit_open_until")


@dataclass(frozen=True)
class Pause:
    """Uploads wait until `until` because of `reason` (quota, upload_limit)."""

    until: datetime
    reason: str


class SharedState:
    """The pause, the breaker and the quota, as every replica sees them."""

    def __init__(
        self, store: UploadStore, quota: QuotaPlan, metrics: Metrics, cooldown: timedelta
    ) -> None:
        self._store = store
        self._quota = quota
        self._metrics = metrics
        self._cooldown = cooldown
        self._log = get_logger("vod_upload")

    # --- the pause ----------------------------------------------------------------------------

    async def read_pause(self) -> Pause | None:
        """The pause in force (or passed, not yet cleared), or None."""
        kv = await self._store.kv_get_many(PAUSE_KEYS)
        try:
            until = datetime.fromisoformat(kv["uploads_paused_until"])
        except (KeyError, ValueError):
            return None
        return Pause(until, kv.get("uploads_paused_reason", ""))

    async def set_pause(self, pause: Pause) -> None:
        """Pause every worker of every replica until `pause.until`."""
        await self._store.kv_set_many({"uploads_paused_until": pause.until.isoformat(),
                                       "uploads_paused_reason": pause.reason})  # fmt: skip

    async def clear_pause(self) -> None:
        """The pause is over."""
        await self._store.kv_delete(list(PAUSE_KEYS))

    # --- the breaker --------------------------------------------------------------------------

    async def circuit_allows(self, now: datetime) -> tuple[bool, bool]:
        """(whether an upload may start now, whether this caller took the half-open probe)."""
        allowed = False

        def change(kv: dict[str, str]) -> dict[str, str] | None:
            nonlocal allowed
            before = breaker.Circuit.from_kv(kv)
            allowed, after = breaker.may_start(before, now, self._cooldown)
            return after.to_kv() if after != before else None

        values = await self._store.kv_transition(CIRCUIT_KEYS, change)
        circuit = breaker.Circuit.from_kv(values)
        self._gauge(circuit)
        probe = allowed and circuit.state is breaker.CircuitState.HALF_OPEN
        if probe:
            self._log.info("circuit_half_open", probe="this upload")
        return allowed, probe

    async def circuit(
        self, transition: Callable[[breaker.Circuit], breaker.Circuit]
    ) -> tuple[breaker.Circuit, breaker.Circuit]:
        """Apply a transition under the breaker's lock: (before, after)."""
        seen: list[breaker.Circuit] = []

        def change(kv: dict[str, str]) -> dict[str, str] | None:
            before = breaker.Circuit.from_kv(kv)
            seen.append(before)
            after = transition(before)
            return after.to_kv() if after != before else None

        try:
            values = await self._store.kv_transition(CIRCUIT_KEYS, change)
        except DatabaseUnavailable:
            return breaker.Circuit(), breaker.Circuit()
        circuit = breaker.Circuit.from_kv(values)
        self._gauge(circuit)
        return (seen[0] if seen else circuit), circuit

    def _gauge(self, circuit: breaker.Circuit) -> None:
        self._metrics.circuit_open.set(0 if circuit.state is breaker.CircuitState.CLOSED else 1)

    # --- the quota ----------------------------------------------------------------------------

    async def quota_status(self, now: datetime) -> dict[str, dict[str, int]]:
        """Units used and left today in every bucket, for /status and the gauges."""
        day = pacific_day(now)
        keys = {bucket: used_key(bucket, day) for bucket in self._quota.budgets}
        kv = await self._store.kv_get_many(keys.values())
        out = {}
        for bucket, key in keys.items():
            try:
                used = int(kv.get(key, "0"))
            except ValueError:
                used = 0
            budget = self._quota.budgets[bucket]
            out[bucket] = {"used": used, "remaining": max(0, budget - used), "budget": budget}
            self._metrics.youtube_quota_used.labels(bucket=bucket).set(used)
            self._metrics.youtube_quota_remaining.labels(bucket=bucket).set(max(0, budget - used))
        return out


class CircuitCheck:
    """`/readyz`: the upload circuit breaker is not open."""

    name = "upload_circuit"

    def __init__(self, store: UploadStore) -> None:
        self._store = store

    async def check(self) -> CheckResult:
        """Closed, or open/half open with when the next probe may go."""
        circuit = breaker.Circuit.from_kv(await self._store.kv_get_many(CIRCUIT_KEYS))
        if circuit.state is breaker.CircuitState.CLOSED:
            return CheckResult(True, f"closed ({circuit.failures} consecutive failures)")
        until = circuit.open_until.isoformat() if circuit.open_until else "?"
        return CheckResult(False, f"{circuit.state.value} after {circuit.failures} failed "
                                  f"uploads; next probe at {until}")  # fmt: skip
