"""The store's named queries against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg_pool
import pytest

from vodarchiver.db.store import Store
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.models import VodState


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[psycopg_pool.AsyncConnectionPool[Any]]:
    """A small pool over this test's database."""
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as p:
        yield p


async def test_counts_cover_every_state(
    pool: psycopg_pool.AsyncConnectionPool[Any], db_url: str
) -> None:
    """Counts are per state, with zero for states no VOD is in."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for i, state in enumerate(["queued", "queued", "uploaded", "gone"]):
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, state) VALUES (%s, 'c', %s)",
                [str(i), state],
            )
    counts = await Store(pool).vod_counts_by_state()
    assert counts[VodState.QUEUED] == 2
    assert counts[VodState.UPLOADED] == 1
    assert counts[VodState.GONE] == 1
    assert counts[VodState.DOWNLOADING] == 0
    assert set(counts) == set(VodState)


async def test_kv_round_trip(pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
    """kv_set upserts; kv_get_many returns only present keys."""
    store = Store(pool)
    await store.kv_set("avg_download_ms", "100")
    await store.kv_set("avg_download_ms", "150")
    await store.kv_set("circuit_state", "closed")
    got = await store.kv_get_many(["avg_download_ms", "circuit_state", "missing"])
    assert got == {"avg_download_ms": "150", "circuit_state": "closed"}


async def test_unreachable_database_is_a_transient_error() -> None:
    """A pool that cannot connect surfaces as DatabaseUnavailable within the timeout, not a psycopg error."""
    async with psycopg_pool.AsyncConnectionPool(
        "host=127.0.0.1 port=1 dbname=x connect_timeout=1", min_size=0, max_size=1, open=False
    ) as dead:
        with pytest.raises(DatabaseUnavailable):
            await Store(dead).vod_counts_by_state(timeout_s=0.5)
