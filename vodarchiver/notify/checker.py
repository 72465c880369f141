"""The periodic conditions: at_risk, disk_low, chat_overdue, token_expiring, twitch_auth_failed.

State changes notify through triggers (migration 0008); what no single write causes is looked
for here every NOTIFY_CHECK_INTERVAL and raised with a dedupe key naming the condition instance
(`at_risk:<vod>:<generation>:48h`, `token_expiring:<generation>`, `disk_low:<episode>`), so every
replica may look and each instance still notifies once, across restarts. A condition that comes
and goes (disk low, Twitch refusing our credentials) is an episode: the first replica to see it
names it in `kv`, and the name is cleared when the condition ends, so the next occurrence
notifies again. Twitch's refusals are read from the readiness checks that already watch them
(the app token and the chat login), which is the whole of the hook. The age of the stored
YouTube refresh token is exported as a gauge.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Gauge

from vodarchiver.db.notify_store import NotifyStore
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.health import ReadinessCheck
from vodarchiver.logs import get_logger
from vodarchiver.metrics import Metrics
from vodarchiver.notify.events import (
    Event,
    at_risk_due,
    at_risk_thresholds,
    threshold_label,
    token_expiring_due,
)

EPISODE_PREFIX = "notify_episode:"
# Free space must come back this far above DISK_MIN_FREE_GB before a new disk_low episode.
DISK_HYSTERESIS = 1.1
# The readiness checks whose failure means Twitch refused our credentials.
TWITCH_CHECKS = ("twitch_credentials", "chat")


@dataclass(frozen=True)
class CheckerPolicy:
    """What the checker looks for."""

    interval_s: float
    at_risk_window: timedelta
    token_lifetime: timedelta | None
    min_free_bytes: int
    chat_window_s: float


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24}d {hours % 24}h"


class Checker:
    """Raises the periodic conditions into the outbox."""

    def __init__(
        self,
        store: NotifyStore,
        metrics: Metrics,
        policy: CheckerPolicy,
        *,
        data_dir: Path,
        probes: Sequence[ReadinessCheck] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._policy = policy
        self._data_dir = data_dir
        self._probes = [p for p in probes if p.name in TWITCH_CHECKS]
        self._clock = clock
        self._token_age = Gauge(
            "youtube_refresh_token_age_seconds",
            "Age of the stored YouTube refresh token (since it was issued or last rotated).",
            registry=metrics.registry,
        )
        self._db_down = False
        self._log = get_logger("notify")

    async def run_forever(self) -> None:
        """Look every interval until cancelled; a database outage is logged once."""
        while True:
            try:
                await self.run_once()
                if self._db_down:
                    self._db_down = False
                    self._log.info("notify_checks_resumed")
            except DatabaseUnavailable as exc:
                if not self._db_down:
                    self._db_down = True
                    self._log.warning("notify_checks_paused", reason=str(exc))
            await asyncio.sleep(self._policy.interval_s)

    async def run_once(self) -> list[str]:
        """One look at every condition; the dedupe keys of the events this call raised."""
        now = self._clock()
        raised: list[str] = []
        raised += await self._at_risk(now)
        raised += await self._disk()
        raised += await self._chat_overdue()
        raised += await self._token(now)
        raised += await self._twitch(now)
        for key in raised:
            self._log.info("notification_raised", key=key)
        return raised

    async def _raise(
        self, event: Event, key: str, payload: dict[str, Any], vod_id: str | None = None
    ) -> list[str]:
        created = await self._store.insert(event.value, key, payload, vod_id)
        return [key] if created else []

    async def _at_risk(self, now: datetime) -> list[str]:
        thresholds = at_risk_thresholds(self._policy.at_risk_window)
        window = max(thresholds).total_seconds()
        raised: list[str] = []
        for vod in await self._store.at_risk(window):
            threshold = at_risk_due(vod["expires_at"], now, thresholds)
            if threshold is None:
                continue
            label = threshold_label(threshold)
            payload = {"title": vod["title"], "channel": vod["channel"], "state": vod["state"],
                       "expires_at": vod["expires_at"].isoformat(), "threshold": label,
                       "url": vod["url"]}  # fmt: skip
            vod_id = str(vod["twitch_vod_id"])
            # The generation: a reprocessed VOD that is again not on YouTube is warned again.
            key = f"at_risk:{vod_id}:{vod['generation']}:{label}"
            raised += await self._raise(Event.AT_RISK, key, payload, vod_id)
        return raised

    async def _disk(self) -> list[str]:
        try:
            free = (await asyncio.to_thread(shutil.disk_usage, self._data_dir)).free
        except OSError:
            return []
        key = f"{EPISODE_PREFIX}disk_low"
        need = self._policy.min_free_bytes
        if free >= need * DISK_HYSTERESIS:
            await self._store.episode_close(key)
            return []
        if free >= need:
            return []
        episode = await self._store.episode_open(key, self._clock().isoformat())
        payload = {"free_gib": round(free / 2**30, 1), "min_gib": round(need / 2**30, 1)}
        return await self._raise(Event.DISK_LOW, f"disk_low:{episode}", payload)

    async def _chat_overdue(self) -> list[str]:
        raised: list[str] = []
        for p in await self._store.chat_overdue(self._policy.chat_window_s):
            payload = {"channel": p["channel"], "stream_id": p["stream_id"],
                       "messages": int(p["messages"]),
                       "ended_at": p["ended_at"].isoformat()}  # fmt: skip
            raised += await self._raise(Event.CHAT_OVERDUE, f"chat_overdue:{p['stream_id']}",
                                        payload)  # fmt: skip
        return raised

    async def _token(self, now: datetime) -> list[str]:
        row = await self._store.token_age("youtube")
        if row is None or row["refresh_issued_at"] is None:
            return []
        issued: datetime = row["refresh_issued_at"]
        self._token_age.set(max(0.0, (now - issued).total_seconds()))
        if row["revoked_at"] is not None:
            return []  # auth_needed said it already
        lifetime = self._policy.token_lifetime
        dies = token_expiring_due(issued, now, lifetime)
        if dies is None or lifetime is None:
            return []
        payload = {"expires_at": dies.isoformat(), "age": _age(now - issued),
                   "lifetime": _age(lifetime)}  # fmt: skip
        return await self._raise(Event.TOKEN_EXPIRING, f"token_expiring:{row['generation']}",
                                 payload)  # fmt: skip

    async def _twitch(self, now: datetime) -> list[str]:
        raised: list[str] = []
        for probe in self._probes:
            try:
                result = await probe.check()
            except Exception:  # noqa: S112 - a crashing check says nothing about credentials
                continue
            key = f"{EPISODE_PREFIX}twitch_auth_failed:{probe.name}"
            if result.ok:
                await self._store.episode_close(key)
                continue
            if "refused" not in result.detail:
                continue  # not asked yet, or a network problem: not a credentials verdict
            episode = await self._store.episode_open(key, now.isoformat())
            which = "app token" if probe.name == "twitch_credentials" else "chat login"
            raised += await self._raise(
                Event.TWITCH_AUTH_FAILED, f"twitch_auth_failed:{probe.name}:{episode}",
                {"which": which, "reason": result.detail},
            )  # fmt: skip
        return raised
