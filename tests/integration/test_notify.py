"""Notifications end to end on a real PostgreSQL: triggers fill the outbox, Apprise posts to a local sink."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest

from tests.conftest import ManualClock, logged
from tests.fakes.server import LocalServer
from tests.fakes.sink import FakeSink
from vodarchiver.db.notify_store import NotifyStore
from vodarchiver.metrics import Metrics
from vodarchiver.models import CheckResult
from vodarchiver.notify.checker import Checker, CheckerPolicy
from vodarchiver.notify.events import parse_events
from vodarchiver.notify.sender import Sender, SenderPolicy, Targets, send_test

CONSOLE = "http://archive.example:8080"
WAIT_S = 20.0


@dataclass
class Rig:
    """A sink, its URL, a pool on a fresh database and a way to build senders."""

    sink: FakeSink
    url: str
    db_url: str
    store: NotifyStore
    data_dir: Path

    def sender(self, events: str = "all", *, urls: list[str] | None = None,
               clock: Callable[[], datetime] | None = None) -> Sender:  # fmt: skip
        """A sender to the sink with test-sized retry waits."""
        policy = SenderPolicy(events=parse_events(events), console_url=CONSOLE,
                              retry_base_s=0.02, retry_cap_s=0.1, poll_s=0.02)  # fmt: skip
        targets = Targets(urls if urls is not None else [self.url], timeout_s=5)
        kwargs: dict[str, Any] = {"clock": clock} if clock else {}
        return Sender(self.store, targets, policy, data_dir=self.data_dir, **kwargs)

    async def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction (as another process would)."""
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(statement, params)
            return await cur.fetchall() if cur.description else []


@pytest.fixture
async def rig(db_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """The sink on 127.0.0.1 and a store on a fresh database."""
    sink = FakeSink()
    pool = psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=6, open=False)
    await pool.open()
    try:
        async with LocalServer(sink) as server:
            url = f"json://127.0.0.1:{server.port}/hook"
            yield Rig(sink, url, db_url, NotifyStore(pool), tmp_path)
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def running(*senders: Sender) -> AsyncIterator[None]:
    """Senders delivering in the background for the duration of the block, then stopped."""
    tasks = [asyncio.create_task(s.run_forever()) for s in senders]
    try:
        yield
    finally:
        for sender in senders:
            sender.stop()  # each finishes recording the event in hand
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)


async def wait(event: asyncio.Event) -> None:
    """Wait for a sink event, bounded."""
    await asyncio.wait_for(event.wait(), WAIT_S)


async def add_vod(rig: Rig, vod_id: str, state: str = "queued", **cols: Any) -> None:
    """A VOD row of channel alice titled `Stream <id>`."""
    names = ["twitch_vod_id", "channel", "title", "state", *cols]
    values = [vod_id, "alice", f"Stream {vod_id}", state, *cols.values()]
    marks = ", ".join(["%s"] * len(values))
    await rig.sql(f"INSERT INTO vods ({', '.join(names)}) VALUES ({marks})", *values)


async def outbox(rig: Rig) -> list[tuple[Any, ...]]:
    """(event, vod_id, state, attempts) of every outbox row, in order."""
    return await rig.sql("SELECT event, vod_id, state, attempts FROM notifications ORDER BY id")


async def drained(*senders: Sender) -> None:
    """Nothing is left to claim: every sender finds no due row."""
    for sender in senders:
        assert await sender.run_once() == 0


async def test_state_changes_notify_once_each_with_their_fields(rig: Rig) -> None:
    """published, failed and gone_unarchived come from the state change itself and arrive once, with title, channel, link and next step."""
    await add_vod(rig, "101", "uploading")
    await add_vod(rig, "102", "downloading")
    await add_vod(rig, "103", "queued")
    await rig.sql(
        "UPDATE vods SET state = 'uploaded', processed = 1,"
        " youtube_url = 'https://www.youtube.com/watch?v=abc' WHERE twitch_vod_id = '101'"
    )
    await rig.sql("UPDATE vods SET state = 'failed_permanent', processing_error = 'HTTP 403 from CDN'"
                  " WHERE twitch_vod_id = '102'")  # fmt: skip
    await rig.sql("UPDATE vods SET state = 'gone' WHERE twitch_vod_id = '103'")
    await rig.sql("UPDATE vods SET title = 'renamed' WHERE twitch_vod_id = '101'")  # no event
    sender = rig.sender()
    async with running(sender):
        await wait(rig.sink.when(3))
    await drained(sender)
    assert len(rig.sink.received) == 3
    by_type = {r["body"]["title"].split(":")[0]: r["body"] for r in rig.sink.received}
    published = by_type["Published"]
    assert published["title"] == "Published: Stream 101"
    assert "https://www.youtube.com/watch?v=abc" in published["message"]
    assert 'alice: "Stream 101" (VOD 101)' in published["message"]
    assert f"{CONSOLE}/ui/vods/101" in published["message"]
    assert published["type"] == "success"
    failed = by_type["Failed for good"]
    assert "HTTP 403 from CDN" in failed["message"]
    assert "Next: fix the cause" in failed["message"]
    assert failed["type"] == "failure"
    assert by_type["Lost before archiving"]["message"].count("VOD 103") == 1
    assert [row[2] for row in await outbox(rig)] == ["sent"] * 3


async def test_a_sink_failing_three_times_still_gets_each_event_once(rig: Rig) -> None:
    """Three 500s, then success: the event arrives once, its failures recorded with a reason."""
    await add_vod(rig, "201", "downloading")
    await rig.sql("UPDATE vods SET state = 'failed_permanent' WHERE twitch_vod_id = '201'")
    rig.sink.fail_next(3)
    sender = rig.sender()
    async with running(sender):
        await wait(rig.sink.when(1))
    await drained(sender)
    assert rig.sink.refused == 3
    assert rig.sink.titles() == ["Failed for good: Stream 201"]
    rows = await rig.sql("SELECT state, attempts, last_error FROM notifications")
    assert rows[0][:2] == ("sent", 3)
    assert "#1 json:" in rows[0][2]
    assert "127.0.0.1" not in rows[0][2]


async def test_a_delivery_that_keeps_failing_is_visible_in_status_and_blocks_nothing(
    rig: Rig,
) -> None:
    """A target that always fails: the event is retried, then given up; status shows it without the URL; other events still go."""
    clock = ManualClock()
    bad = "json://127.0.0.1:9/never-listening-token-xyz"
    stuck = rig.sender(urls=[bad], clock=clock)
    await add_vod(rig, "301", "downloading")
    await rig.sql("UPDATE vods SET state = 'failed_permanent' WHERE twitch_vod_id = '301'")
    assert await stuck.run_once() == 1
    status = await stuck.status()
    assert (status["pending"], status["retrying"]) == (1, 1)
    assert status["failing"][0]["event"] == "failed"
    assert status["failing"][0]["attempts"] == 1
    assert "never-listening-token-xyz" not in json.dumps(status)
    clock.now += timedelta(days=2)  # past the give-up deadline
    await rig.sql("UPDATE notifications SET next_attempt_at = now()")
    assert await stuck.run_once() == 1
    status = await stuck.status()
    assert status["failed"] == 1
    assert status["failing"][0]["state"] == "failed"
    # Another sender with a working target is not held up by the failed event.
    await add_vod(rig, "302", "uploading")
    await rig.sql("UPDATE vods SET state = 'uploaded', processed = 1 WHERE twitch_vod_id = '302'")
    good = rig.sender()
    async with running(good):
        await wait(rig.sink.when(1))
    assert rig.sink.titles() == ["Published: Stream 302"]


async def test_two_senders_on_one_database_deliver_each_event_once(rig: Rig) -> None:
    """Two replicas' senders share 40 events: every one arrives exactly once."""
    for n in range(40):
        await add_vod(rig, str(400 + n), "uploading")
    await rig.sql("UPDATE vods SET state = 'uploaded', processed = 1")
    first, second = rig.sender(), rig.sender()
    async with running(first, second):
        await wait(rig.sink.when(40))
    await drained(first, second)
    titles = rig.sink.titles()
    assert sorted(titles) == sorted(f"Published: Stream {400 + n}" for n in range(40))


async def test_events_not_chosen_are_skipped_not_sent(rig: Rig) -> None:
    """NOTIFY_EVENTS without `published`: the event is recorded as skipped and never sent."""
    await add_vod(rig, "501", "uploading")
    await add_vod(rig, "502", "downloading")
    await rig.sql("UPDATE vods SET state = 'uploaded', processed = 1 WHERE twitch_vod_id = '501'")
    await rig.sql("UPDATE vods SET state = 'failed_permanent' WHERE twitch_vod_id = '502'")
    sender = rig.sender("all,-published")
    async with running(sender):
        await wait(rig.sink.when(1))
    await drained(sender)
    assert rig.sink.titles() == ["Failed for good: Stream 502"]
    assert [(r[0], r[2]) for r in await outbox(rig)] == [("published", "skipped"),
                                                         ("failed", "sent")]  # fmt: skip


async def test_the_breaker_notifies_once_per_opening_and_once_when_closed(rig: Rig) -> None:
    """circuit_state written open again and again is one circuit_open; half_open then closed, or a DELETE, is one circuit_closed."""
    kv = "INSERT INTO kv (key, value) VALUES ('circuit_state', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    await rig.sql("INSERT INTO kv (key, value) VALUES ('circuit_failures', '5')")
    for value in ("open", "open", "half_open", "open", "half_open", "closed", "closed"):
        await rig.sql(kv, value)
    await rig.sql(kv, "open")
    await rig.sql("DELETE FROM kv WHERE key IN ('circuit_state', 'circuit_failures')")
    assert [r[0] for r in await outbox(rig)] == ["circuit_open", "circuit_closed",
                                                 "circuit_open", "circuit_closed"]  # fmt: skip
    sender = rig.sender()
    async with running(sender):
        await wait(rig.sink.when(4))
    assert "5 uploads failed in a row" in rig.sink.received[0]["body"]["message"]


async def test_quota_pause_and_a_revoked_token_notify_once(rig: Rig) -> None:
    """The quota pause says when uploads resume (once however often it is written); revoking the token asks for a sign-in."""
    until = "2026-12-06T08:00:00+00:00"
    for _ in range(3):
        await rig.sql("INSERT INTO kv (key, value) SELECT k, v FROM unnest(%s::text[], %s::text[])"
                      " AS t (k, v) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                      ["uploads_paused_until", "uploads_paused_reason"], [until, "quota"])  # fmt: skip
    await rig.sql("INSERT INTO kv (key, value) VALUES ('uploads_paused_until', '2026-12-07T08:00:00+00:00')"
                  " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")  # fmt: skip
    await rig.sql(
        "INSERT INTO oauth_tokens (provider, sealed, generation) VALUES ('youtube', 'x', 3)"
    )
    for _ in range(2):
        await rig.sql(
            "UPDATE oauth_tokens SET revoked_at = now(), revoked_reason = 'invalid_grant'"
        )
    assert [r[0] for r in await outbox(rig)] == ["quota_exhausted", "quota_exhausted",
                                                 "auth_needed"]  # fmt: skip
    sender = rig.sender()
    async with running(sender):
        await wait(rig.sink.when(3))
    first = rig.sink.received[0]["body"]
    assert first["title"] == "YouTube quota spent until 2026-12-06 08:00 UTC"
    assert "vodarchiver auth youtube" in rig.sink.received[2]["body"]["message"]


class Refusing:
    """A readiness check saying what AppToken says when Twitch refuses the secret."""

    name = "twitch_credentials"

    def __init__(self) -> None:
        self.result = CheckResult(
            False, "Twitch refused the client credentials: invalid client secret"
        )

    async def check(self) -> CheckResult:
        return self.result


async def test_periodic_conditions_notify_once_per_instance_across_checkers(
    rig: Rig, tmp_path: Path
) -> None:
    """at_risk at 48h then 12h, token_expiring, disk_low and a Twitch refusal: each once, whichever of two checkers looks, however often."""
    now = datetime.now(UTC)
    await add_vod(rig, "601", "queued", expires_at=now + timedelta(hours=30))
    await add_vod(rig, "602", "uploaded", expires_at=now + timedelta(hours=3))  # archived: fine
    await rig.sql(
        "INSERT INTO oauth_tokens (provider, sealed, generation) VALUES ('youtube', 'x', 1)"
    )
    await rig.sql("UPDATE oauth_tokens SET refresh_issued_at = now() - interval '6 days'")
    refusing = Refusing()
    clock = ManualClock(now)

    def checker() -> Checker:
        policy = CheckerPolicy(interval_s=60, at_risk_window=timedelta(hours=48),
                               token_lifetime=timedelta(days=7), min_free_bytes=2**62,
                               chat_window_s=900)  # fmt: skip
        return Checker(rig.store, Metrics("test"), policy, data_dir=tmp_path, probes=[refusing],
                       clock=clock)  # fmt: skip

    one, two = checker(), checker()
    raised = await one.run_once()
    assert sorted(k.split(":")[0] for k in raised) == ["at_risk", "disk_low", "token_expiring",
                                                      "twitch_auth_failed"]  # fmt: skip
    assert "at_risk:601:1:48h" in raised
    assert await two.run_once() == []
    assert await one.run_once() == []
    clock.now = now + timedelta(hours=19)  # 11 hours left: the last call
    assert await two.run_once() == ["at_risk:601:1:12h"]
    assert await one.run_once() == []
    refusing.result = CheckResult(True, "app token acquired")  # the episode ends...
    assert await one.run_once() == []
    refusing.result = CheckResult(False, "Twitch refused the client credentials: again")
    assert [k.split(":")[0] for k in await two.run_once()] == ["twitch_auth_failed"]  # ...a new one
    sender = rig.sender()
    async with running(sender):
        await wait(rig.sink.when(6))
    await drained(sender)
    titles = rig.sink.titles()
    assert "At risk (48h): Stream 601" in titles
    assert "At risk (12h): Stream 601" in titles
    assert any(t.startswith("YouTube token expires") for t in titles)
    assert any(t.startswith("Disk low") for t in titles)
    assert sum(t.startswith("Twitch refused our credentials (app token)") for t in titles) == 2


async def test_notify_test_reports_each_target(rig: Rig) -> None:
    """The test message reaches the sink; an unreachable target is named by position, with a reason, never by URL."""
    targets = Targets([rig.url, "json://127.0.0.1:9/secret-token-abc"], timeout_s=5)
    results = await send_test(targets)
    assert results[0][1] is None
    assert results[1][0].startswith("#2 json:")
    assert results[1][1]
    assert "secret-token-abc" not in results[1][1]
    assert rig.sink.titles() == ["vodarchiver test notification"]


async def test_a_failure_log_never_shows_the_target_url(rig: Rig, log_lines: io.StringIO) -> None:
    """A failed delivery logs the event, attempt and a scrubbed reason; neither the URL nor its token."""
    token_url = "json://127.0.0.1:9/hook-token-0123456789"
    sender = rig.sender(urls=[token_url])
    await add_vod(rig, "701", "downloading")
    await rig.sql("UPDATE vods SET state = 'failed_permanent' WHERE twitch_vod_id = '701'")
    assert await sender.run_once() == 1
    failed = logged(log_lines, "notification_failed")
    assert failed[0]["attempt"] == 1
    assert "hook-token-0123456789" not in log_lines.getvalue()


async def test_any_state_change_notifies_once_per_generation_even_the_runbook_update(
    rig: Rig,
) -> None:
    """The runbook's UPDATE (no `state` in it) still moves state_changed_at; a reprocessed VOD is published again, a restored one that fails again is not re-announced."""
    await add_vod(rig, "801", "uploading")
    await rig.sql("UPDATE vods SET state = 'uploaded', processed = 1,"
                  " youtube_url = 'https://www.youtube.com/watch?v=one' WHERE twitch_vod_id = '801'")  # fmt: skip
    await rig.sql("UPDATE vods SET state_changed_at = now() - interval '1 day'")
    await rig.sql("UPDATE vods SET processed=0, processing_error=NULL, youtube_url=NULL "
                  "WHERE twitch_vod_id='801'")  # the runbook's force-reprocess recipe  # fmt: skip
    rows = await rig.sql("SELECT state, generation, state_changed_at > now() - interval '1 minute'"
                         " FROM vods WHERE twitch_vod_id = '801'")  # fmt: skip
    assert rows == [("queued", 2, True)]
    for state in ("downloading", "downloaded", "uploading"):
        await rig.sql("UPDATE vods SET state = %s WHERE twitch_vod_id = '801'", state)
    await rig.sql("UPDATE vods SET state = 'uploaded', processed = 1,"
                  " youtube_url = 'https://www.youtube.com/watch?v=two' WHERE twitch_vod_id = '801'")  # fmt: skip
    await add_vod(rig, "802", "downloading")
    for state in ("failed_permanent", "queued", "downloading", "failed_permanent"):
        await rig.sql("UPDATE vods SET state = %s WHERE twitch_vod_id = '802'", state)
    keys = await rig.sql("SELECT dedupe_key FROM notifications ORDER BY id")
    assert [k for (k,) in keys] == ["published:801:1", "published:801:2", "failed:802:1"]
    sender = rig.sender()
    async with running(sender):
        await wait(rig.sink.when(3))
    await drained(sender)
    messages = [r["body"]["message"] for r in rig.sink.received]
    assert sum("watch?v=two" in m for m in messages) == 1
