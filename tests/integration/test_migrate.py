"""Migrations against a real PostgreSQL: once each, under a lock, and the runbook's SQL works."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import DatabaseFactory
from vodarchiver import logs
from vodarchiver.db.migrate import ADVISORY_LOCK_KEY, load_migrations, migrate
from vodarchiver.db.queries import q
from vodarchiver.errors import MigrationError
from vodarchiver.models import DownloadState, VodState


async def applied_versions(url: str) -> list[tuple[int, int]]:
    """(version, times recorded) from schema_migrations."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY 1"
        )
        return [(int(v), int(n)) for v, n in await cur.fetchall()]


async def test_fresh_database_gets_every_migration_once(databases: DatabaseFactory) -> None:
    """The first run applies everything and records it; the second applies nothing."""
    url = await databases.empty()
    everything = load_migrations()
    assert await migrate(url) == everything
    assert await migrate(url) == []
    assert await applied_versions(url) == [(m.version, 1) for m in everything]


async def test_concurrent_migrations_apply_each_once(databases: DatabaseFactory) -> None:
    """Four migrators racing on one empty database: exactly one applies, the others find it done."""
    url = await databases.empty()
    results = await asyncio.gather(*(migrate(url) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(load_migrations())]
    assert all(n == 1 for _, n in await applied_versions(url))


async def test_a_lower_number_landing_later_is_applied_on_start(databases: DatabaseFactory) -> None:
    """A database migrated past a gap starts again when the missing lower number arrives later."""
    url = await databases.empty()
    shipped = load_migrations()
    top = shipped[-1].version
    late = dataclasses.replace(shipped[0], version=top + 1, name="late",
                               sql="-- Intent: a test\nCREATE TABLE late_one (x int);")  # fmt: skip
    later = dataclasses.replace(shipped[0], version=top + 2, name="later",
                                sql="-- Intent: a test\nCREATE TABLE later_one (x int);")  # fmt: skip
    assert await migrate(url, [*shipped, later]) == [*shipped, later]
    assert await migrate(url, [*shipped, late, later]) == [late]
    assert await migrate(url, [*shipped, late, later]) == []
    assert [v for v, _ in await applied_versions(url)] == [m.version for m in shipped] + [
        top + 1,
        top + 2,
    ]
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT to_regclass('late_one') IS NOT NULL")
        assert await cur.fetchone() == (True,)


async def test_an_edited_migration_stops_startup(db_url: str) -> None:
    """Changing an applied migration's text is refused before anything runs."""
    edited = [dataclasses.replace(m, sql=m.sql + "\n-- edited") for m in load_migrations()]
    with pytest.raises(MigrationError, match="changed"):
        await migrate(db_url, edited)


async def test_a_failing_migration_leaves_nothing_half_done(db_url: str) -> None:
    """A migration that fails rolls back entirely and is not recorded."""
    broken = [*load_migrations()]
    broken.append(dataclasses.replace(broken[0], version=broken[-1].version + 1, name="broken",
                                      sql="CREATE TABLE half_done (x int); SELECT 1/0;"))  # fmt: skip
    with pytest.raises(MigrationError, match="division by zero"):
        await migrate(db_url, broken)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT to_regclass('half_done')")
        assert await cur.fetchone() == (None,)
    assert [v for v, _ in await applied_versions(db_url)] == [m.version for m in load_migrations()]


async def test_state_constraints_match_the_enums(db_url: str) -> None:
    """Every VodState and DownloadState is accepted by the schema, and nothing else is."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for i, state in enumerate(VodState):
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, state) VALUES (%s, 'c', %s)",
                [f"v{i}", state.value],
            )
        for i, dl in enumerate(DownloadState):
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, download_state) VALUES (%s, 'c', %s)",
                [f"d{i}", dl.value],
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, state) VALUES ('x', 'c', 'bogus')"
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, download_state) VALUES ('y', 'c', '42%')"
            )


async def test_runbook_sql_works(db_url: str) -> None:
    """The runbook's reset, inspection and breaker-clearing statements run unchanged."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, processed, processing_error, youtube_url, date) "
            "VALUES ('123', 'c', 1, 'boom', 'https://youtu.be/x', now())"
        )
        await conn.execute(
            "INSERT INTO kv (key, value) VALUES ('circuit_state', 'open'), ('circuit_failures', '5')"
        )
        await conn.execute(
            "UPDATE vods SET processed=0, processing_error=NULL, youtube_url=NULL WHERE twitch_vod_id='123'"
        )
        rows = await (
            await conn.execute(
                "SELECT twitch_vod_id, processed, processing_error FROM vods ORDER BY date;"
            )
        ).fetchall()
        assert rows == [("123", 0, None)]
        await conn.execute(
            "DELETE FROM kv WHERE key IN ('circuit_state','circuit_failures','circuit_open_until');"
        )
        assert await (await conn.execute("SELECT count(*) FROM kv")).fetchone() == (0,)


class EventStream(io.StringIO):
    """A log stream that sets an asyncio.Event when a given event name is written."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.seen = asyncio.Event()

    def write(self, text: str) -> int:
        if f'"event":"{self.name}"' in text:
            self.seen.set()
        return super().write(text)


@pytest.fixture
def lock_waiting() -> Iterator[EventStream]:
    """JSON logs captured, with an event for the first `migration_lock_waiting`."""
    stream = EventStream("migration_lock_waiting")
    logs.configure("info", "json", stream=stream)
    yield stream
    logs.configure("info", "text")


async def test_a_held_lock_times_out_naming_its_holder(
    databases: DatabaseFactory, lock_waiting: EventStream
) -> None:
    """If another session keeps the migration lock, migrate gives up after its timeout and names the holder."""
    url = await databases.empty()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as holder:
        pid = (await (await holder.execute("SELECT pg_backend_pid()")).fetchone() or [0])[0]
        await holder.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        with pytest.raises(MigrationError, match=rf"\[{pid}\].*MIGRATION_LOCK_TIMEOUT"):
            await migrate(url, lock_timeout_s=0.5)
    assert lock_waiting.seen.is_set()
    assert f'"holders":[{pid}]' in lock_waiting.getvalue()


async def test_the_same_key_held_in_another_database_is_not_a_holder(
    databases: DatabaseFactory, lock_waiting: EventStream
) -> None:
    """Advisory keys are per database: a lock on our key elsewhere neither blocks nor is named."""
    other, url = await databases.empty(), await databases.empty()
    async with await psycopg.AsyncConnection.connect(other, autocommit=True) as holder:
        await holder.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        mine = await psycopg.AsyncConnection.connect(url, autocommit=True)
        async with mine:
            cur = await mine.execute(q("migrations_lock_holders"), {"key": ADVISORY_LOCK_KEY})
            assert await cur.fetchall() == []
        assert await migrate(url, lock_timeout_s=5) == load_migrations()
    assert not lock_waiting.seen.is_set()


async def test_migrate_waits_for_the_lock_then_proceeds(
    databases: DatabaseFactory, lock_waiting: EventStream
) -> None:
    """A migrator that finds the lock taken waits, and applies the schema once it is released."""
    url = await databases.empty()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as holder:
        await holder.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        waiting = asyncio.create_task(migrate(url, lock_timeout_s=30))
        await asyncio.wait_for(lock_waiting.seen.wait(), 10)
        assert not waiting.done()
        await holder.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
        applied = await asyncio.wait_for(waiting, 10)
    assert applied == load_migrations()


async def test_a_migration_that_lands_after_higher_ones_is_applied_in_order(
    databases: DatabaseFactory,
) -> None:
    """A database migrated without one number (a branch not landed yet) starts, and applies it when it lands."""
    url = await databases.empty()
    shipped = load_migrations()
    top = shipped[-1].version
    later = dataclasses.replace(shipped[0], version=top + 2, name="later",
                                sql="-- Intent: test.\nCREATE TABLE later_one (x int);")  # fmt: skip
    reserved = dataclasses.replace(shipped[0], version=top + 1, name="reserved",
                                   sql="-- Intent: test.\nCREATE TABLE reserved_one (x int);")  # fmt: skip
    assert await migrate(url, [*shipped, later]) == [*shipped, later]
    assert await migrate(url, [*shipped, reserved, later]) == [reserved]
    assert [v for v, _ in await applied_versions(url)] == [*(m.version for m in shipped),
                                                          top + 1, top + 2]  # fmt: skip
