"""Chat across replicas: two chat stages on one PostgreSQL and one fake IRC server (issue 14).

Each "replica" is a whole chat stage as app.py builds it (its own pool, writer, recorders and
owner identity under its own DATA_DIR), in the runbook's form (TWITCH_CHANNEL recorded all the
time). What is checked is what Twitch and the database see: connections joined to the channel,
rows stored, lease rows. Waits are deadlines on those observable conditions, never sleeps.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import logged, make_open_dir
from tests.fakes.irc import FakeIrc
from tests.fakes.tcp_relay import TcpRelay
from vodarchiver.db.chat_lease_store import ChatLeaseStore
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.chat import ChatCheck, ChatStage
from vodarchiver.pipeline.chat_leases import ChatLeases
from vodarchiver.pipeline.chat_writer import ChatWriter
from vodarchiver.pipeline.leased import Owner
from vodarchiver.twitch.chat import ChatRecorder, Credentials, Timing
from vodarchiver.twitch.irc import ChatEvent
from vodarchiver.values import parse_irc_url

LEASE_S = 1.5


def privmsg(i: int) -> str:
    """A PRIVMSG with id m<i>."""
    return (f"@id=m{i};tmi-sent-ts={int(time.time() * 1000)};user-id=5 "
            f":bob!bob@bob.tmi.twitch.tv PRIVMSG #alice :hello {i}")  # fmt: skip


async def eventually(what: str, check: Callable[[], bool], within: float) -> float:
    """Seconds until `check()` holds; fails after `within` (a deadline on an observable state)."""
    begin = time.monotonic()
    while not check():
        if time.monotonic() - begin > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - begin


@dataclass
class Replica:
    """One chat stage with everything it owns."""

    name: str
    stage: ChatStage
    pool: psycopg_pool.AsyncConnectionPool[Any]
    seen: list[str] = field(default_factory=list)  # every event its recorder handed on
    task: asyncio.Task[None] | None = None

    def start(self) -> Replica:
        """Run the stage as the supervisor would."""
        self.task = asyncio.create_task(self.stage.run_forever(), name=f"replica-{self.name}")
        return self

    async def stop(self) -> None:
        """A clean stop (SIGTERM's path): recorders stopped, leases given up, writer flushed."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    @property
    def owner(self) -> str:
        """The owner written in its lease rows."""
        return self.stage.leases.owner


@dataclass
class Cluster:
    """Replicas on one database and one IRC server."""

    irc: FakeIrc
    db_url: str
    make: Callable[..., Any]
    replicas: list[Replica] = field(default_factory=list)

    def joined_ever(self) -> int:
        """How many connections ever joined #alice."""
        return len([c for c in self.irc.clients if c.joined == "alice"])

    async def count(self, sql: str) -> int:
        """A single number from the database."""
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            row = await (await conn.execute(sql)).fetchone()
            assert row is not None
            return int(row[0])


@pytest.fixture
async def cluster(db_url: str, log_lines: io.StringIO) -> AsyncIterator[Cluster]:
    """A fake IRC server; `make(name, slots=, url=)` builds a replica on the test database."""
    irc = await FakeIrc().start()
    dirs: list[Path] = []
    result = Cluster(irc, db_url, lambda: None)

    async def make(name: str, *, slots: int = 1, url: str | None = None) -> Replica:
        data_dir = make_open_dir(f"chat-{name}")
        dirs.append(data_dir)
        pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            url or db_url, min_size=1, max_size=4, open=False, reconnect_timeout=2
        )
        await pool.open()
        metrics = Metrics("test")
        writer = ChatWriter(ChatStore(pool), metrics, flush_interval_s=0.05)
        replica_seen: list[str] = []

        def sink(event: ChatEvent, stream_id: str | None) -> None:
            replica_seen.append(event.msg_id)
            writer.add(event, stream_id)

        async def anonymous() -> Credentials:
            return Credentials("justinfan1", None)

        def recorder(channel: str) -> ChatRecorder:
            return ChatRecorder(channel, endpoint=parse_irc_url(irc.ws_url), credentials=anonymous,
                                sink=sink, metrics=metrics,
                                timing=Timing(backoff_base_s=0.05, backoff_cap_s=0.1))  # fmt: skip

        leases = ChatLeases(ChatLeaseStore(pool), Owner(data_dir), lease_s=LEASE_S, slots=slots)
        stage = ChatStage(channels=["alice"], auto_start=False, helix=None, store=ChatStore(pool),
                          writer=writer, metrics=metrics, recorder=recorder, leases=leases,
                          poll_interval_s=30, grace_s=120, window_s=900)  # fmt: skip
        replica = Replica(name, stage, pool, replica_seen)
        result.replicas.append(replica)
        return replica

    result.make = make
    try:
        yield result
    finally:
        for replica in result.replicas:
            await replica.stop()
            await replica.pool.close()
        await irc.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


async def test_one_replica_records_a_channel_and_another_takes_over_on_a_clean_stop(
    cluster: Cluster, log_lines: io.StringIO
) -> None:
    """Two replicas, one connection to #alice; the holder stops and the other joins within a pass; /status names the recorder."""
    irc = cluster.irc
    a = (await cluster.make("a")).start()
    await irc.wait_joined("alice")
    b = (await cluster.make("b")).start()
    # B has passed over the channel and seen A's lease: it must not connect.
    await eventually("b sees a's lease", lambda: b.stage.leases.elsewhere() == {"alice": [a.owner]},
                     within=10)  # fmt: skip
    assert cluster.joined_ever() == 1, [c.nick for c in irc.clients]
    assert (list(a.stage.recorders), list(b.stage.recorders)) == (["alice"], [])
    check = await ChatCheck(b.stage).check()
    assert check.detail == "recorded by another replica: alice"
    status = await b.stage.status()
    assert [h["owner"] for h in status["recorded_by"]["alice"]] == [a.owner]
    assert status["recorded_by"]["alice"][0]["this_replica"] is False
    await irc.send("alice", [privmsg(i) for i in range(50)])
    await eventually("50 stored", lambda: a.stage.writer.written == 50, within=10)

    stopped = time.monotonic()
    await a.stop()
    await irc.wait_joined("alice", count=2, timeout=10)
    gap = time.monotonic() - stopped
    # A clean stop deletes the lease: B takes it at its next pass (a third of the lease).
    assert gap < LEASE_S / 3 + 1.0, f"takeover gap after a clean stop {gap:.2f}s, lease {LEASE_S}s"
    assert len(irc.joined("alice")) == 1
    await irc.send("alice", [privmsg(i) for i in range(50, 60)])
    await eventually("10 more stored", lambda: b.stage.writer.written == 10, within=10)
    assert await cluster.count("SELECT count(*) FROM chat_messages") == 60
    status = await b.stage.status()
    assert [(h["owner"], h["this_replica"]) for h in status["recorded_by"]["alice"]] == [
        (b.owner, True)
    ]
    assert logged(log_lines, "chat_leases_released")[0]["channels"] == ["alice"]
    print(f"takeover gap after a clean stop: {gap:.3f}s (lease {LEASE_S}s)")


async def test_a_replica_that_loses_its_database_stops_and_another_takes_over(
    cluster: Cluster, log_lines: io.StringIO
) -> None:
    """The holder's database link is cut: it stops recording within the lease, and the other replica joins once the lease ran out (gap measured)."""
    irc = cluster.irc
    info = conninfo_to_dict(cluster.db_url)
    relay = await TcpRelay(str(info.get("host") or "127.0.0.1"),
                           int(info.get("port") or 5432)).start()  # fmt: skip
    try:
        a = (await cluster.make(
            "a", url=make_conninfo(cluster.db_url, host="127.0.0.1", port=relay.port)
        )).start()  # fmt: skip
        first = await irc.wait_joined("alice")
        b = (await cluster.make("b")).start()
        await eventually("b sees a's lease", lambda: bool(b.stage.leases.elsewhere()), within=10)

        relay.cut()
        cut_at = time.monotonic()
        a_stopped = await eventually("a stops recording", lambda: first.closed, within=LEASE_S + 3)
        await irc.wait_joined("alice", count=2, timeout=LEASE_S + 5)
        gap = time.monotonic() - cut_at
        assert a_stopped <= LEASE_S + 0.5, f"a recorded {a_stopped:.2f}s after losing the database"
        assert gap <= LEASE_S + LEASE_S / 3 + 1.5, (
            f"takeover gap {gap:.2f}s after the holder lost its database, lease {LEASE_S}s"
        )
        # A gave the channel up before B took it: a lost database never means two recorders.
        events = [e["event"] for e in logged(log_lines, "chat_lease_lost")
                  + logged(log_lines, "chat_lease_taken")]  # fmt: skip
        assert "chat_lease_lost" in events
        lost = logged(log_lines, "chat_lease_lost")[0]
        assert lost["reason"] == "database unreachable for longer than the lease"
        order = [json_event for json_event in log_lines.getvalue().splitlines()
                 if "chat_lease_lost" in json_event or "chat_lease_taken" in json_event]  # fmt: skip
        assert ["chat_lease_lost" in order[-2], "chat_lease_taken" in order[-1]] == [True, True], (
            order
        )
        assert (list(a.stage.recorders), list(b.stage.recorders)) == ([], ["alice"])
        assert len(irc.joined("alice")) == 1
        print(f"takeover gap after the holder lost its database: {gap:.3f}s (lease {LEASE_S}s)")

        # The database is back: A finds the channel taken and stays off.
        relay.restore()
        await eventually("a passes again", lambda: a.stage.leases.elsewhere() == {"alice": [b.owner]},
                         within=15)  # fmt: skip
        assert (list(a.stage.recorders), len(irc.joined("alice"))) == ([], 1)
    finally:
        await relay.stop()


async def test_with_redundancy_two_both_record_and_each_message_is_stored_once(
    cluster: Cluster,
) -> None:
    """CHAT_REDUNDANCY=2: both replicas join #alice, both receive every line, the table holds each once; a third replica stays off."""
    irc = cluster.irc
    a = (await cluster.make("a", slots=2)).start()
    b = (await cluster.make("b", slots=2)).start()
    await irc.wait_joined("alice", count=2)
    await eventually("two open links", lambda: len(irc.joined("alice")) == 2, within=10)
    c = (await cluster.make("c", slots=2)).start()
    await eventually("c sees both leases",
                     lambda: len(c.stage.leases.elsewhere().get("alice", [])) == 2,
                     within=10)  # fmt: skip
    assert (list(c.stage.recorders), cluster.joined_ever()) == ([], 2)
    await irc.send("alice", [privmsg(i) for i in range(300)])
    await eventually("both recorders saw every line",
                     lambda: len(a.seen) == 300 and len(b.seen) == 300, within=10)  # fmt: skip
    await eventually(
        "both writers done",
        lambda: (
            a.stage.writer.pending == 0
            and b.stage.writer.pending == 0
            and a.stage.writer.written + b.stage.writer.written == 300
        ),
        within=10,
    )
    assert await cluster.count("SELECT count(*) FROM chat_messages") == 300
    assert await cluster.count("SELECT count(DISTINCT msg_id) FROM chat_messages") == 300
    slots = await cluster.count(
        "SELECT count(DISTINCT owner) FROM chat_leases WHERE lease_until > now()"
    )
    assert slots == 2
