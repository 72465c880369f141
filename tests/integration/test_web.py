"""The service surface in-process (ASGI) over a real PostgreSQL: endpoints, metrics, correlation ids."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import psycopg_pool
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.conftest import logged
from vodarchiver import logs
from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.uploads import UploadStore
from vodarchiver.health import DatabaseCheck, DataDirCheck
from vodarchiver.metrics import Metrics
from vodarchiver.web import Api, RequestContext, build_app


@dataclass
class Surface:
    """The app under test and what it was built from."""

    client: httpx.AsyncClient
    metrics: Metrics
    data_dir: Path
    db_url: str


@pytest.fixture
async def surface(db_url: str, tmp_path: Path, log_lines: io.StringIO) -> AsyncIterator[Surface]:
    """The real app over a real pool, store and probe."""
    metrics = Metrics("9.9.9")
    probe = DatabaseProbe(db_url)
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        store = UploadStore(pool)
        api = Api(
            store=store, probe=probe, metrics=metrics,
            checks=[DatabaseCheck(probe), DataDirCheck(tmp_path)],
            version="9.9.9", started_at=datetime.now(UTC),
        )  # fmt: skip
        transport = httpx.ASGITransport(app=build_app(api, metrics))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield Surface(client, metrics, tmp_path, db_url)
    await probe.aclose()


async def test_healthz_and_readyz_when_all_is_well(surface: Surface) -> None:
    """healthz says ok; readyz lists each check with ok and a detail."""
    health = await surface.client.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok")
    ready = await surface.client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True, "detail": "reachable"}
    assert body["checks"]["data_dir"]["ok"] is True
    assert "GiB free" in body["checks"]["data_dir"]["detail"]


async def test_readyz_is_503_when_a_check_fails(surface: Surface) -> None:
    """A missing DATA_DIR makes readyz not_ready with the reason, while healthz stays 200."""
    shutil.rmtree(surface.data_dir)
    ready = await surface.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["checks"]["data_dir"] == {
        "ok": False,
        "detail": f"{surface.data_dir} does not exist",
    }
    assert (await surface.client.get("/healthz")).status_code == 200


async def test_status_reports_counts_and_runbook_values(surface: Surface) -> None:
    """/status counts VODs by bucket and state and shows kv averages and the breaker."""
    async with await psycopg.AsyncConnection.connect(surface.db_url, autocommit=True) as conn:
        for i, state in enumerate(["queued", "downloading", "uploaded", "failed_permanent"]):
            await conn.execute(
                "INSERT INTO vods (twitch_vod_id, channel, state) VALUES (%s, 'c', %s)",
                [str(i), state],
            )
        await conn.execute(
            "INSERT INTO kv (key, value) VALUES ('avg_download_ms', '2500'), ('circuit_state', 'closed')"
        )
    body = (await surface.client.get("/status")).json()
    assert (body["pending"], body["errored"], body["processed"]) == (2, 1, 1)
    assert body["by_state"]["downloading"] == 1
    assert body["avg_download_ms"] == 2500.0
    assert body["avg_upload_ms"] is None
    assert body["circuit_state"] == "closed"
    assert body["version"] == "9.9.9"


async def test_metrics_pass_promtool_and_show_queue_depth(surface: Surface) -> None:
    """/metrics is valid for promtool and includes process metrics and the runbook's queue depth."""
    async with await psycopg.AsyncConnection.connect(surface.db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, state) VALUES ('1', 'c', 'queued'), ('2', 'c', 'live')"
        )
    await surface.client.get("/healthz")
    response = await surface.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "vod_queue_depth 1.0" in text
    assert 'vodarchiver_vods{state="live"} 1.0' in text
    assert "process_resident_memory_bytes" in text
    assert "vodarchiver_database_up 1.0" in text
    assert 'vodarchiver_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    promtool = shutil.which("promtool")
    assert promtool, (
        "promtool is needed (make test installs it into .tools/bin via scripts/ensure-tools)"
    )
    checked = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await checked.communicate(response.content)
    assert checked.returncode == 0, out.decode()


async def test_invented_http_methods_do_not_grow_the_metrics(surface: Surface) -> None:
    """A request with a made-up method is counted under method="other", not under its own label."""
    await surface.client.request("AAA1", "/healthz")
    text = (await surface.client.get("/metrics")).text
    assert 'method="AAA1"' not in text
    assert (
        'vodarchiver_http_requests_total{method="other",route="/healthz",status="405"} 1.0' in text
    )


async def test_metrics_registry_is_per_instance() -> None:
    """Two Metrics objects do not share state (no module-global registry)."""
    a, b = Metrics("1"), Metrics("2")
    a.vod_queue_depth.set(7)
    assert b"vod_queue_depth 7.0" in a.render()
    assert b"vod_queue_depth 0.0" in b.render()


async def test_correlation_id_is_reused_echoed_and_logged(
    surface: Surface, log_lines: io.StringIO
) -> None:
    """A valid X-Correlation-ID comes back in the response and in the request's log line."""
    response = await surface.client.get("/status", headers={"X-Correlation-ID": "trace-42"})
    assert response.headers["X-Correlation-ID"] == "trace-42"
    (line,) = logged(log_lines, "http_request")
    assert line["corr"] == "trace-42"
    assert line["component"] == "http"
    assert line["status"] == 200
    assert "duration_ms" in line


async def test_invalid_or_missing_correlation_ids_are_replaced(surface: Surface) -> None:
    """An id that is too long or not printable is replaced; none supplied gets a fresh one each time."""
    too_long = await surface.client.get("/healthz", headers={"X-Correlation-ID": "x" * 200})
    assert len(too_long.headers["X-Correlation-ID"]) == 32
    first = (await surface.client.get("/healthz")).headers["X-Correlation-ID"]
    second = (await surface.client.get("/healthz")).headers["X-Correlation-ID"]
    assert first != second


async def test_every_line_logged_while_serving_carries_corr(log_lines: io.StringIO) -> None:
    """Lines written by handlers and by the crash path all carry the request's corr."""
    log = logs.get_logger("handler")

    async def chatty(_: Request) -> PlainTextResponse:
        log.info("step_one")
        log.warning("step_two")
        return PlainTextResponse("done")

    async def broken(_: Request) -> PlainTextResponse:
        log.info("about_to_fail")
        raise RuntimeError("kaput")

    app = RequestContext(
        Starlette(routes=[Route("/chatty", chatty), Route("/broken", broken)]), Metrics("t")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.get("/chatty", headers={"X-Correlation-ID": "c-1"})).status_code == 200
        failed = await client.get("/broken", headers={"X-Correlation-ID": "c-2"})
        assert failed.status_code == 500
        assert failed.headers["X-Correlation-ID"] == "c-2"
        assert (
            await client.get("/nowhere", headers={"X-Correlation-ID": "c-3"})
        ).status_code == 404
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    by_corr = {
        corr: [line["event"] for line in lines if line.get("corr") == corr]
        for corr in ("c-1", "c-2", "c-3")
    }
    assert by_corr["c-1"] == ["step_one", "step_two", "http_request"]
    assert "about_to_fail" in by_corr["c-2"]
    assert "http_request" in by_corr["c-2"]
    assert by_corr["c-3"] == ["http_request"]
    assert all("corr" in line for line in lines if line["component"] in ("handler", "http"))
