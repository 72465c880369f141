"""Schemathesis reads /openapi.json and fuzzes every route of the real app: no answer is a 5xx.

The app runs behind uvicorn on a loopback port, in a thread with its own event loop and its own
pool over a fresh migrated database (the fuzzer's calls block, so the server cannot share the
test's loop). No ADMIN_TOKEN: the fuzzer is a loopback client, so the admin routes' handlers are
reached too. It runs as the `st` command with its three generating phases (the schema's examples,
the coverage phase's boundary and just-out-of-bounds values, random fuzzing), valid and invalid
data: its pytest integration (`from_fixture`) reads a private attribute that pytest 9 removed.
Examples per route are bounded so the whole run takes well under a minute.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import psycopg_pool
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.uploads import UploadStore
from vodarchiver.health import DatabaseCheck
from vodarchiver.metrics import Metrics
from vodarchiver.openapi import document
from vodarchiver.values import HostPort
from vodarchiver.web import Api, HttpServer, RequestContext, bind, bound_address, build_app
from vodarchiver.webguard import GuardPolicy, WebGuard
from vodarchiver.webspec import Endpoint, Param

EXAMPLES = 30
EVERY_ROUTE = {
    "GET /healthz", "GET /readyz", "GET /status", "GET /metrics", "GET /vods", "GET /vods/{vod_id}",
    "GET /vods/{vod_id}/chat", "POST /admin/vods/{vod_id}/cancel", "POST /login", "POST /logout",
    "GET /session",
}  # fmt: skip


class ThreadedServer:
    """An ASGI app on uvicorn in a thread with its own event loop, for as long as `with` lasts."""

    def __init__(self, make: Callable[[], AbstractAsyncContextManager[ASGIApp]]) -> None:
        self._make = make
        self.sock = bind(HostPort("127.0.0.1", 0))  # listening now: early requests wait in backlog
        self.url = f"http://127.0.0.1:{bound_address(self.sock).port}"
        self._built = threading.Event()
        self._server: HttpServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        try:
            async with self._make() as app:
                self._server = HttpServer(app, self.sock)
                self._loop = asyncio.get_running_loop()
                self._built.set()
                await self._server.serve()
        finally:
            self._built.set()

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._built.wait(30), "the app never started"
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.stop)
        self._thread.join(30)
        self.sock.close()
        assert not self._thread.is_alive(), "the app did not stop"


def real_app(db_url: str) -> Callable[[], AbstractAsyncContextManager[ASGIApp]]:
    """The daemon's app over its own pool on `db_url`."""

    @asynccontextmanager
    async def make() -> AsyncIterator[ASGIApp]:
        metrics = Metrics("9.9.9")
        probe = DatabaseProbe(db_url)
        async with psycopg_pool.AsyncConnectionPool(
            db_url, min_size=1, max_size=4, open=False
        ) as pool:
            api = Api(store=UploadStore(pool), probe=probe, metrics=metrics,
                      checks=[DatabaseCheck(probe)], version="9.9.9", started_at=datetime.now(UTC),
                      chat=ChatStore(pool))  # fmt: skip
            yield build_app(api, metrics)
        await probe.aclose()

    return make


@asynccontextmanager
async def canary_app() -> AsyncIterator[ASGIApp]:
    """Our route and guard machinery with one declared route that fails with a 500 above 50."""

    async def fragile(request: Request) -> Response:
        if request.state.params.get("n", 0) > 50:
            raise RuntimeError("a planted bug")
        return JSONResponse({"ok": True})

    async def spec(_: Request) -> Response:
        return JSONResponse(document(endpoints, title="canary", version="1"))

    endpoints = [
        Endpoint("/fragile", ("GET",), fragile, "fails above 50",
                 params=(Param("n", "integer", minimum=0, maximum=100),)),
        Endpoint("/openapi.json", ("GET",), spec, "this document"),
    ]  # fmt: skip
    app = Starlette(routes=[e.route() for e in endpoints])
    yield RequestContext(WebGuard(app, GuardPolicy()), Metrics("1"))


def schemathesis_run(url: str, report_dir: Path) -> subprocess.CompletedProcess[str]:
    """`st run` over the app's /openapi.json: every phase that generates data, valid and invalid."""
    st = Path(sys.executable).with_name("st")
    return subprocess.run(
        [str(st), "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
         "--phases", "examples,coverage,fuzzing", "--mode", "all",
         "--max-examples", str(EXAMPLES), "--workers", "1", "--seed", "1",
         "--request-timeout", "10", "--generation-allow-x00", "true",
         "--generation-database", "none", "--suppress-health-check", "all",
         "--report", "junit", "--report-junit-path", str(report_dir / "junit.xml"),
         "--output-truncate", "true", "--warnings", "off", "--no-color"],
        capture_output=True, text=True, timeout=240, cwd=report_dir, check=False,
    )  # fmt: skip


@pytest.fixture
def app_url(db_url: str) -> Iterator[str]:
    """The base URL of the running app, over a database with a few VODs to find."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, state) VALUES "
            "('1', 'alice', 'queued'), ('2', 'alice', 'uploaded'), ('3', 'bob', 'downloading')"
        )
    with ThreadedServer(real_app(db_url)) as server:
        yield server.url


def test_the_fuzzer_reports_a_planted_5xx(tmp_path: Path) -> None:
    """The same harness fails on a declared route with a planted 500, so a clean run means something."""
    with ThreadedServer(canary_app) as server:
        run = schemathesis_run(server.url, tmp_path)
    assert run.returncode != 0, run.stdout[-3000:]
    assert "GET /fragile" in run.stdout
    assert "500" in run.stdout


def test_schemathesis_finds_no_5xx_on_any_route(app_url: str, tmp_path: Path) -> None:
    """`st run` over /openapi.json (examples, coverage and fuzzing, valid and invalid data) gets no 5xx."""
    doc = httpx.get(f"{app_url}/openapi.json", timeout=10).json()
    routes = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
    assert routes >= EVERY_ROUTE, routes  # not vacuous: every route is in the document
    run = schemathesis_run(app_url, tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    report = (tmp_path / "junit.xml").read_text()
    for route in EVERY_ROUTE:  # each operation was really exercised
        assert route in report, route
