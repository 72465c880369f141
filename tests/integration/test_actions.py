"""Operator actions over HTTP against a real PostgreSQL: every action from every state, the audit
table, the runbook's SQL recipe, the monitor, and bad input."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import psycopg_pool
import pytest

from vodarchiver import lifecycle
from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.uploads import UploadStore
from vodarchiver.health import DatabaseCheck
from vodarchiver.lifecycle import Action, VodFacts, VodState
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.operator import Operator
from vodarchiver.web import Api, build_app


@dataclass
class Admin:
    """The app's HTTP surface over a fresh database."""

    client: httpx.AsyncClient
    db_url: str

    async def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """One statement on the test database."""
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(query, list(params))
            return await cur.fetchall() if cur.description else []

    async def add(self, vod_id: str, state: str, **columns: Any) -> None:
        """A VOD in `state` (with extra columns)."""
        now = datetime.now(UTC)
        values = {"twitch_vod_id": vod_id, "channel": "alice", "title": "A stream", "state": state,
                  "date": now, "expires_at": now + timedelta(days=3), "duration_s": 60,
                  **columns}  # fmt: skip
        names = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        await self.sql(f"INSERT INTO vods ({names}) VALUES ({marks})", *values.values())

    async def state(self, vod_id: str) -> str:
        """The VOD's state now."""
        return str(
            (await self.sql("SELECT state FROM vods WHERE twitch_vod_id = %s", vod_id))[0][0]
        )


@pytest.fixture
async def admin(db_url: str, tmp_path: Path, log_lines: io.StringIO) -> AsyncIterator[Admin]:
    """The real app over a real pool (no stages running: actions act on the rows)."""
    metrics = Metrics("9.9.9")
    probe = DatabaseProbe(db_url)
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        store = UploadStore(pool)
        api = Api(store=store, probe=probe, metrics=metrics, checks=[DatabaseCheck(probe)],
                  version="9.9.9", started_at=datetime.now(UTC), operator=Operator(store))  # fmt: skip
        transport = httpx.ASGITransport(app=build_app(api, metrics), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield Admin(client, db_url)
    await probe.aclose()


BODIES: dict[Action, dict[str, Any]] = {Action.PRIORITY: {"priority": 7}}


@pytest.mark.parametrize("action", list(Action))
async def test_each_action_from_each_state_is_applied_or_refused_with_409(
    admin: Admin, action: Action
) -> None:
    """Every state x this action: 200 and the table's target where it applies, 409 with the state and the allowed actions elsewhere."""
    past = datetime.now(UTC) + timedelta(hours=1)  # a retry scheduled in the future
    for n, state in enumerate(s for s in VodState if s is not VodState.PLACEHOLDER):
        vod_id = str(1000 + n)
        await admin.add(vod_id, state.value, next_attempt_at=past)
        answer = await admin.client.post(f"/admin/vods/{vod_id}/{action.value}",
                                         json=BODIES.get(action, {}))  # fmt: skip
        row = (await admin.sql("SELECT state, download_state, file_path, next_attempt_at FROM vods "
                               "WHERE twitch_vod_id = %s", vod_id))[0]  # fmt: skip
        facts = VodFacts(state, retry_pending=True)
        expected = lifecycle.find(action.event, facts)
        if expected is None:
            assert answer.status_code == 409, (state, answer.text)
            body = answer.json()
            assert body["state"] == state.value
            assert body["allowed"] == [a.value for a in lifecycle.allowed_actions(facts)]
            assert row[0] == state.value  # nothing changed
        else:
            assert answer.status_code == 200, (state, answer.text)
            body = answer.json()
            target = expected.target or state
            assert (body["from_state"], body["state"]) == (state.value, target.value)
            assert row[0] == target.value
    audited = await admin.sql("SELECT count(*) FROM vod_audit WHERE action = %s", action.value)
    allowed = sum(1 for s in VodState if lifecycle.find(action.event, VodFacts(s, retry_pending=True))
                  and s is not VodState.PLACEHOLDER)  # fmt: skip
    assert audited[0][0] == allowed


async def test_actions_are_audited_with_actor_and_correlation_id_and_paged(admin: Admin) -> None:
    """The audit table says who, when, what, from and to, and the request's correlation id; /admin/audit pages it newest first."""
    await admin.add("2001", "queued")
    headers = {"X-Correlation-ID": "op-123"}
    assert (await admin.client.post("/admin/vods/2001/cancel", headers=headers)).status_code == 200
    assert (await admin.client.post("/admin/vods/2001/restore")).status_code == 200
    assert (
        await admin.client.post("/admin/vods/2001/priority", json={"priority": 5})
    ).status_code == 200
    page = (await admin.client.get("/admin/audit", params={"vod": "2001", "limit": 2})).json()
    assert [i["action"] for i in page["items"]] == ["priority", "restore"]
    assert page["next"] is not None
    rest = (
        await admin.client.get("/admin/audit", params={"vod": "2001", "after": page["next"]})
    ).json()
    assert [(i["action"], i["from_state"], i["to_state"], i["actor"], i["corr"])
            for i in rest["items"]] == [("cancel", "queued", "canceled", "loopback", "op-123")]  # fmt: skip
    assert rest["next"] is None
    vod = (await admin.client.get("/vods/2001")).json()
    assert vod["priority"] == 5
    assert vod["actions"] == ["cancel", "skip", "priority"]


async def test_restore_keeps_a_verified_file_and_reprocess_moves_parts_to_history(
    admin: Admin, tmp_path: Path
) -> None:
    """A canceled VOD with its verified file goes back to downloaded; reprocess of an uploaded one starts generation 2 with the old parts as history."""
    await admin.add(
        "3001", "canceled", download_state="downloaded", file_path=str(tmp_path / "x.mp4")
    )
    restored = await admin.client.post("/admin/vods/3001/restore")
    assert restored.json()["state"] == "downloaded"
    await admin.add("3002", "uploaded", download_state="downloaded", processed=1,
                    youtube_url="https://www.youtube.com/watch?v=old")  # fmt: skip
    await admin.sql(
        "INSERT INTO youtube_uploads (vod_id, part, parts, file_path, file_size, fingerprint, marker,"
        " video_id, upload_status) SELECT id, 1, 1, '/f', 1, 'fp', '[vodarchiver vod=3002 part=1/1]',"
        " 'old', 'processed' FROM vods WHERE twitch_vod_id = '3002'"
    )
    answer = await admin.client.post("/admin/vods/3002/reprocess", json={"delete_old": True})
    assert answer.json() == {"id": "3002", "action": "reprocess", "from_state": "uploaded",
                             "state": "queued", "generation": 2}  # fmt: skip
    row = (await admin.sql("SELECT generation, processed, youtube_url, discard_files, "
                           "delete_old_videos FROM vods WHERE twitch_vod_id = '3002'"))[0]  # fmt: skip
    assert row == (2, 0, None, True, True)
    vod = (await admin.client.get("/vods/3002")).json()
    assert vod["parts"] == []
    assert [(h["generation"], h["video_id"], h["delete_wanted"]) for h in vod["history"]] == [
        (1, "old", True)
    ]


async def test_the_runbooks_force_reprocess_update_is_the_reprocess_event(admin: Admin) -> None:
    """The runbook's UPDATE, verbatim, queues an uploaded VOD again as a new generation, audited as actor sql; an in-flight VOD is left alone."""
    await admin.add("4001", "uploaded", download_state="downloaded", processed=1,
                    youtube_url="https://www.youtube.com/watch?v=abc", file_path="/gone.mp4")  # fmt: skip
    await admin.sql("UPDATE vods SET processed=0, processing_error=NULL, youtube_url=NULL "
                    "WHERE twitch_vod_id='4001'")  # fmt: skip
    row = (await admin.sql("SELECT state, download_state, generation, discard_files, file_path "
                           "FROM vods WHERE twitch_vod_id = '4001'"))[0]  # fmt: skip
    assert row == ("queued", "pending", 2, True, None)
    audit = await admin.sql("SELECT action, from_state, to_state, actor FROM vod_audit")
    assert audit == [("reprocess", "uploaded", "queued", "sql")]
    await admin.add("4002", "downloading", processing_error="boom")
    await admin.sql("UPDATE vods SET processed=0, processing_error=NULL, youtube_url=NULL "
                    "WHERE twitch_vod_id='4002'")  # fmt: skip
    assert await admin.state("4002") == "downloading"


async def test_actions_on_the_daemon_and_the_monitor(admin: Admin) -> None:
    """Circuit reset deletes the runbook's keys; pause and resume write the shared pause; the monitor shows them and the leases."""
    await admin.sql("INSERT INTO kv (key, value) VALUES ('circuit_state', 'open'), "
                    "('circuit_failures', '5'), ('circuit_open_until', '2999-01-01T00:00:00+00:00')")  # fmt: skip
    assert (await admin.client.post("/admin/circuit/reset")).status_code == 200
    assert await admin.sql("SELECT key FROM kv WHERE key LIKE 'circuit%%'") == []
    paused = await admin.client.post(
        "/admin/uploads/pause", json={"minutes": 30, "reason": "maintenance"}
    )
    assert paused.json()["reason"] == "maintenance"
    await admin.add("5001", "downloading", claimed_by="host:/d:1:2:download:ab",
                    claim_until=datetime.now(UTC) + timedelta(minutes=1))  # fmt: skip
    monitor = (await admin.client.get("/admin/monitor")).json()
    assert monitor["pause"]["uploads_paused_reason"] == "maintenance"
    assert [w["twitch_vod_id"] for w in monitor["workers"]] == ["5001"]
    assert set(monitor["stages"]) == {"download", "upload"}
    assert (await admin.client.post("/admin/uploads/resume")).json() == {"paused": False}
    actions = await admin.sql("SELECT action FROM vod_audit ORDER BY id")
    assert actions == [("circuit_reset",), ("uploads_pause",), ("uploads_resume",)]


@pytest.mark.parametrize(
    ("path", "body", "parameter"),
    [
        ("/admin/vods/abc/cancel", None, "vod_id"),
        ("/admin/vods/1%00/cancel", None, "vod_id"),
        ("/admin/vods/" + "1" * 40 + "/cancel", None, "vod_id"),
        ("/admin/vods/6001/priority", {"priority": 2**70}, "priority"),
        ("/admin/vods/6001/priority", {"priority": "high"}, "priority"),
        ("/admin/vods/6001/priority", {}, "priority"),
        ("/admin/vods/6001/reprocess", {"delete_old": "yes"}, "delete_old"),
        ("/admin/uploads/pause", {"minutes": -1}, "minutes"),
        ("/admin/uploads/pause", {"reason": "a\x00b"}, "reason"),
    ],
)
async def test_bad_input_is_a_400_naming_the_parameter(
    admin: Admin, path: str, body: dict[str, Any] | None, parameter: str
) -> None:
    """Malformed ids, out-of-range numbers and wrong types are refused with the parameter's name, changing nothing."""
    await admin.add("6001", "queued")
    answer = await admin.client.post(path, json=body)
    assert answer.status_code == 400
    assert answer.json()["parameter"] == parameter
    assert await admin.state("6001") == "queued"
    assert await admin.sql("SELECT count(*) FROM vod_audit") == [(0,)]


async def test_an_unknown_vod_is_404_and_a_non_json_body_400(admin: Admin) -> None:
    """No such VOD: 404. A body that is not a JSON object: 400 naming the body."""
    assert (await admin.client.post("/admin/vods/999/cancel")).status_code == 404
    await admin.add("7001", "queued")
    answer = await admin.client.post("/admin/vods/7001/cancel", content=b"[1]",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert (answer.status_code, answer.json()["parameter"]) == (400, "body")
    assert (await admin.client.post("/admin/vods/7001/explode")).status_code == 404
