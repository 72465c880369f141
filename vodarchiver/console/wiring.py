"""Builds the console from the settings and the API: the one place app.py calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import psycopg_pool

from vodarchiver.config import Settings
from vodarchiver.console.routes import ApiViews, Console, ConsoleOptions
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.console_store import ConsoleStore
from vodarchiver.web import Api


def build_console(
    settings: Settings,
    api: Api,
    pool: psycopg_pool.AsyncConnectionPool[Any],
    chat_status: Callable[[], Awaitable[dict[str, Any]]] | None,
) -> Console:
    """The console over the API's handlers and the daemon's pool."""
    options = ConsoleOptions(
        data_dir=settings.data_dir,
        disk_min_free_bytes=round(settings.disk_min_free_gb * 2**30),
        at_risk_window_s=settings.at_risk_window_s,
        channels=settings.channels,
        retention_overrides=dict(settings.twitch_retention_days),
    )
    return Console(
        api=ApiViews(status=api.status, readyz=api.readyz, vod=api.vod),
        store=ConsoleStore(pool),
        chat=ChatStore(pool),
        options=options,
        chat_status=chat_status,
    )
