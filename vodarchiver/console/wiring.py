"""Builds the console from the settings and the API: the one place app.py calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psycopg_pool
from starlette.routing import BaseRoute

from vodarchiver.config import Settings
from vodarchiver.console.routes import (
    TIMELINE_LIMIT,
    ApiViews,
    Console,
    ConsoleOptions,
    Timeline,
)
from vodarchiver.console.youtube_connect import GoogleClient, YouTubeConnect
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.console_store import ConsoleStore
from vodarchiver.db.uploads import UploadStore
from vodarchiver.web import Api
from vodarchiver.webspec import Endpoint
from vodarchiver.youtube.crypto import TokenCipher, parse_key


def build_console(
    settings: Settings,
    api: Api,
    pool: psycopg_pool.AsyncConnectionPool[Any],
    chat_status: Callable[[], Awaitable[dict[str, Any]]] | None,
    http: httpx.AsyncClient,
) -> tuple[list[Endpoint], list[BaseRoute]]:
    """The console's declared endpoints and its undeclared routes (HTML pages, files), over the
    API's handlers and the daemon's pool."""
    options = ConsoleOptions(
        data_dir=settings.data_dir,
        disk_min_free_bytes=round(settings.disk_min_free_gb * 2**30),
        at_risk_window_s=settings.at_risk_window_s,
        channels=settings.channels,
        retention_overrides=dict(settings.twitch_retention_days),
    )
    console = Console(
        api=ApiViews(
            status=api.status, readyz=api.readyz, vod=api.vod_doc, timeline=_timeline(api)
        ),
        store=ConsoleStore(pool),
        chat=ChatStore(pool),
        options=options,
        chat_status=chat_status,
    )
    connect = YouTubeConnect(
        client=_google_client(settings), cipher=_cipher(settings), store=UploadStore(pool),
        http=http, render=console.render, off_reason=_off_reason(settings),
    )  # fmt: skip
    return connect.endpoints(), [*console.routes(), *connect.routes()]


def _timeline(api: Api) -> Timeline:
    actions = api.operator.actions

    async def timeline(vod_id: str) -> list[dict[str, Any]]:
        return await actions.audit_page(vod_id=vod_id, before=None, limit=TIMELINE_LIMIT)

    return timeline


def _off_reason(settings: Settings) -> str | None:
    """Why no token can be obtained or stored with these settings (None: it can)."""
    if settings.encryption_key is None and not settings.allow_plaintext_tokens:
        return "ENCRYPTION_KEY is not set (tokens are never stored unencrypted by default)"
    if not settings.yt_client_id or settings.yt_client_secret is None:
        return "YT_CLIENT_ID and YT_CLIENT_SECRET are not set"
    return None


def _google_client(settings: Settings) -> GoogleClient | None:
    if not settings.yt_client_id or settings.yt_client_secret is None:
        return None
    return GoogleClient(
        client_id=settings.yt_client_id, client_secret=settings.yt_client_secret,
        auth_url=settings.google_auth_url, token_url=settings.google_token_url,
    )  # fmt: skip


def _cipher(settings: Settings) -> TokenCipher | None:
    key = settings.encryption_key
    if key is None and not settings.allow_plaintext_tokens:
        return None
    return TokenCipher(parse_key(key.get()) if key is not None else None)
