"""TWITCH_VOD_TYPES: discovery lists the chosen Helix video types, one listing per channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import psycopg_pool
import pytest

from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch
from vodarchiver.db.store import Store
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.discovery import Discovery
from vodarchiver.twitch.auth import AppToken
from vodarchiver.twitch.helix import HelixClient, RetryPolicy
from vodarchiver.values import Secret


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeTwitch, LocalServer, httpx.AsyncClient]]:
    """A fake Twitch with one channel holding an archive, a highlight and an upload."""
    fake = FakeTwitch()
    fake.add_channel("alice")
    now = datetime.now(UTC)
    for i, kind in enumerate(("archive", "highlight", "upload")):
        fake.add_vod(
            "alice", video_id=str(3000 + i), kind=kind, created_at=now - timedelta(days=i + 1)
        )
    async with LocalServer(fake) as server, httpx.AsyncClient(timeout=5) as http:
        yield fake, server, http


async def _discover(served: tuple[FakeTwitch, LocalServer, httpx.AsyncClient], db_url: str,
                    types: tuple[str, ...]) -> list[str]:  # fmt: skip
    fake, server, http = served
    metrics = Metrics("test")
    token = AppToken(http, auth_url=f"{server.url}/oauth2", client_id=fake.client_id,
                     client_secret=Secret("fake-client-secret"), metrics=metrics)  # fmt: skip
    helix = HelixClient(http, token, api_url=f"{server.url}/helix", client_id=fake.client_id,
                        metrics=metrics, vod_types=types, retry=RetryPolicy(base_s=0.01, cap_s=0.05))  # fmt: skip
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        discovery = Discovery(helix, Store(pool), metrics, channels=["alice"],
                              retention_overrides={}, interval_s=300)  # fmt: skip
        await discovery.run_pass()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        rows = await (await conn.execute("SELECT twitch_vod_id FROM vods ORDER BY 1")).fetchall()
    return [r[0] for r in rows]


async def test_archives_only_by_default(
    served: tuple[FakeTwitch, LocalServer, httpx.AsyncClient], db_url: str
) -> None:
    """The default asks Helix for type=archive and stores only the past broadcast."""
    assert await _discover(served, db_url, ("archive",)) == ["3000"]
    assert all(
        r.params.get("type") == ["archive"] for r in served[0].received if r.endpoint == "videos"
    )


async def test_several_types_are_one_listing_filtered(
    served: tuple[FakeTwitch, LocalServer, httpx.AsyncClient], db_url: str
) -> None:
    """archive,highlight reads type=all once and keeps both, never the upload."""
    assert await _discover(served, db_url, ("archive", "highlight")) == ["3000", "3001"]
    assert all(
        r.params.get("type") == ["all"] for r in served[0].received if r.endpoint == "videos"
    )
