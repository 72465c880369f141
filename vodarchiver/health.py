"""Readiness checks and the `/status` summary.

A readiness check is anything with a `name` and an async `check()` returning a CheckResult;
later stages add theirs (credentials, circuit breaker, disk headroom) to the list the composition
root passes to the web app. The status summary is a pure function of the per-state counts and
the runbook's `kv` values, so it is tested without a database.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.store import Store
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.logs import get_logger
from vodarchiver.models import CheckResult, StatusCategory, VodState

CHECK_TIMEOUT_S = 2.0

# kv keys the runbook defines; absent keys mean the subsystem has not written them yet (null).
MOVING_AVERAGE_KEYS = ("avg_download_ms", "avg_upload_ms", "avg_total_ms")
CIRCUIT_KEYS = ("circuit_state", "circuit_failures", "circuit_open_until")
LAST_RUN_KEY = "last_process_run"
STATUS_KV_KEYS = (*MOVING_AVERAGE_KEYS, *CIRCUIT_KEYS, LAST_RUN_KEY)


class ReadinessCheck(Protocol):
    """Something `/readyz` asks."""

    @property
    def name(self) -> str: ...

    async def check(self) -> CheckResult: ...


class DatabaseCheck:
    """PostgreSQL answers a round trip."""

    name = "database"

    def __init__(self, probe: DatabaseProbe) -> None:
        self._probe = probe

    async def check(self) -> CheckResult:
        try:
            await self._probe.ping()
        except DatabaseUnavailable as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, "reachable")


class DataDirCheck:
    """DATA_DIR exists and is writable; the detail gives its free space."""

    name = "data_dir"

    def __init__(self, path: Path) -> None:
        self._path = path

    async def check(self) -> CheckResult:
        return await asyncio.to_thread(self._check)

    def _check(self) -> CheckResult:
        if not self._path.is_dir():
            return CheckResult(False, f"{self._path} does not exist")
        if not os.access(self._path, os.W_OK | os.X_OK):
            return CheckResult(False, f"{self._path} is not writable")
        free = shutil.disk_usage(self._path).free
        return CheckResult(True, f"writable, {free / 2**30:.1f} GiB free")


class DiskCheck:
    """DATA_DIR keeps DISK_MIN_FREE_GB free; the detail says how much is free and who waits."""

    name = "disk"

    def __init__(self, path: Path, min_free_bytes: int, store: Store) -> None:
        self._path = path
        self._min_free = min_free_bytes
        self._store = store

    async def check(self) -> CheckResult:
        free = (await asyncio.to_thread(shutil.disk_usage, self._path)).free
        try:
            waiting = await self._store.vods_waiting_for_disk()
        except DatabaseUnavailable:
            waiting = 0
        detail = f"{free / 2**30:.1f} GiB free, {self._min_free / 2**30:.1f} GiB kept free"
        if waiting:
            detail += f"; {waiting} VOD(s) waiting for disk space"
        return CheckResult(free >= self._min_free and not waiting, detail)


class StaticCheck:
    """A verdict fixed at start-up, such as a subsystem switched off by its settings."""

    def __init__(self, name: str, result: CheckResult) -> None:
        self.name = name
        self._result = result

    async def check(self) -> CheckResult:
        return self._result


async def run_checks(checks: Sequence[ReadinessCheck]) -> dict[str, CheckResult]:
    """Every check at once, each bounded by CHECK_TIMEOUT_S; a crash or a hang counts as failed."""

    async def one(check: ReadinessCheck) -> CheckResult:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                return await check.check()
        except TimeoutError:
            return CheckResult(False, f"no answer within {CHECK_TIMEOUT_S:g}s")
        except Exception as exc:
            return CheckResult(False, f"check failed: {exc.__class__.__name__}")

    results = await asyncio.gather(*(one(c) for c in checks))
    return {c.name: r for c, r in zip(checks, results, strict=True)}


class ReadinessLog:
    """Logs `/readyz` verdicts once per change of a check (not once per probe): a check that
    starts failing (with its detail) and one that recovers."""

    def __init__(self) -> None:
        self._last: dict[str, bool] = {}
        self._log = get_logger("readiness")

    def note(self, results: Mapping[str, CheckResult]) -> None:
        """Compare with the previous probe and log what changed."""
        for name, result in results.items():
            before = self._last.get(name)
            self._last[name] = result.ok
            if (before is None and result.ok) or before == result.ok:
                continue
            if result.ok:
                self._log.info("readiness_check_passing", check=name, detail=result.detail)
            else:
                self._log.warning("readiness_check_failing", check=name, detail=result.detail)


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def summarize(
    counts: Mapping[VodState, int],
    kv: Mapping[str, str],
    *,
    version: str,
    started_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The `/status` document: counts by bucket and by state, breaker, averages, last run."""
    by_category = dict.fromkeys(StatusCategory, 0)
    for state, n in counts.items():
        by_category[state.category] += n
    failures = _number(kv.get("circuit_failures"))
    return {
        "pending": by_category[StatusCategory.PENDING],
        "errored": by_category[StatusCategory.ERRORED],
        "processed": by_category[StatusCategory.PROCESSED],
        "total": sum(counts.values()),
        "queue_depth": sum(n for state, n in counts.items() if state.in_queue),
        "by_state": {state.value: counts.get(state, 0) for state in VodState},
        "circuit_state": kv.get("circuit_state"),
        "circuit_failures": int(failures) if failures is not None else None,
        "circuit_open_until": kv.get("circuit_open_until") or None,
        **{key: _number(kv.get(key)) for key in MOVING_AVERAGE_KEYS},
        "last_process_run": kv.get(LAST_RUN_KEY),
        "version": version,
        "started_at": started_at.isoformat(),
        "uptime_s": round((now - started_at).total_seconds(), 1),
    }
