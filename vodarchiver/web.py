"""The service surface: `/healthz`, `/readyz`, `/status`, `/metrics`, served by uvicorn in our loop.

Every request gets a correlation id: the caller's `X-Correlation-ID` when it is printable ASCII of
at most 128 characters, else a fresh one. It is echoed in the response and bound as `corr` into
every log line written while the request is served. The listening socket is bound before anything
else starts, so a taken or invalid HTTP_ADDR stops start-up at once with a message naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vodarchiver import __version__
from vodarchiver.admin_api import AdminApi
from vodarchiver.chat_export import message_json
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.store import ListCursor, ScrapeFigures
from vodarchiver.db.uploads import UploadStore
from vodarchiver.errors import DatabaseUnavailable, StartupError
from vodarchiver.health import STATUS_KV_KEYS, ReadinessCheck, ReadinessLog, run_checks, summarize
from vodarchiver.lifecycle import VodFacts, allowed_actions
from vodarchiver.logs import bound_contextvars, get_logger
from vodarchiver.metrics import CONTENT_TYPE, Metrics
from vodarchiver.models import VodState
from vodarchiver.openapi import document
from vodarchiver.pipeline.operator import Operator
from vodarchiver.values import HostPort
from vodarchiver.webconn import GuardedH11Protocol
from vodarchiver.webguard import GuardPolicy, WebGuard
from vodarchiver.websession import Sessions
from vodarchiver.webspec import VOD_ID, BadInput, Endpoint, Param, error_response

CORRELATION_HEADER = "X-Correlation-ID"
MAX_CORRELATION_ID = 128
# Connections the kernel queues before the loop accepts them (it accepts at once; what bounds
# the daemon's resources is HTTP_MAX_CONNECTIONS, see webconn).
BACKLOG = 1024
# Any other method becomes "other": a label per invented method would grow /metrics without end.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# `GET /vods`: deeper than this, an offset would read every row it skips; `after` costs a page.
MAX_OFFSET = 10_000
_QUIET_ROUTES = frozenset(
    {"/healthz", "/readyz", "/metrics", "/vods", "/vods/{vod_id}"}
)  # probes: logged at debug


def correlation_id(supplied: str | None) -> str:
    """The caller's id when it is printable ASCII of 1..128 characters, else a new one."""
    if (
        supplied
        and len(supplied) <= MAX_CORRELATION_ID
        and supplied.isascii()
        and supplied.isprintable()
    ):
        return supplied
    return uuid.uuid4().hex


class RequestContext:
    """ASGI middleware: correlation id, the request's log line and its metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics
        self._log = get_logger("http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        supplied = None
        for key, value in scope["headers"]:
            if key == b"x-correlation-id":
                supplied = value.decode("latin-1")
        corr = correlation_id(supplied)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                MutableHeaders(scope=message)[CORRELATION_HEADER] = corr
            await send(message)

        begin = time.perf_counter()
        with bound_contextvars(corr=corr):
            try:
                await self._app(scope, receive, send_with_id)
            except Exception:
                self._log.exception("http_request_crashed", path=scope["path"])
                if not started:
                    await PlainTextResponse("internal error", 500)(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - begin
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                method = scope["method"] if scope["method"] in _METHODS else "other"
                self._metrics.http_requests.labels(method, template, str(status)).inc()
                self._metrics.http_duration.labels(template).observe(elapsed)
                # A failing probe is logged by ReadinessLog once per change, not per request.
                quiet = template in _QUIET_ROUTES and (status < 500 or template == "/readyz")
                self._log.log(
                    logging.DEBUG if quiet else logging.INFO,
                    "http_request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


class Api:
    """The route handlers, over the store, the readiness checks and the metrics."""

    def __init__(
        self,
        *,
        store: UploadStore,
        probe: DatabaseProbe,
        metrics: Metrics,
        checks: Sequence[ReadinessCheck],
        version: str,
        started_at: datetime,
        operator: Operator | None = None,
        uploads: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        chat: ChatStore | None = None,
        chat_status: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        archive: Callable[[str], Awaitable[dict[str, Any]]] | None = None,  # issue 13's fields
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        notifications: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        scrape_timeout_s: float = 2.0,
    ) -> None:
        self._store = store
        self._probe = probe
        self._metrics = metrics
        self._checks = checks
        self._version = version
        self._started_at = started_at
        self._operator = operator or Operator(store)
        self._uploads = uploads
        self._chat = chat
        self._chat_status = chat_status
        self._archive = archive
        self._clock = clock
        self._notifications = notifications
        self._readiness = ReadinessLog()
        self._scrape: asyncio.Future[ScrapeFigures] | None = None
        self._scrape_timeout_s = scrape_timeout_s

    @property
    def operator(self) -> Operator:
        """The operator actions the admin routes carry out."""
        return self._operator

    async def healthz(self, _: Request) -> Response:
        """Liveness: the database answers."""
        try:
            await self._probe.ping()
        except DatabaseUnavailable:
            self._metrics.database_up.set(0)
            return PlainTextResponse("database unavailable", 503)
        self._metrics.database_up.set(1)
        return PlainTextResponse("ok")

    async def readyz(self, _: Request) -> Response:
        """Readiness: every check passes."""
        results = await run_checks(self._checks)
        self._readiness.note(results)
        ready = all(r.ok for r in results.values())
        body = {
            "status": "ready" if ready else "not_ready",
            "checks": {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()},
        }
        return JSONResponse(body, 200 if ready else 503)

    async def status(self, _: Request) -> Response:
        """The runbook's summary."""
        try:
            await self._probe.ping()  # fails at once in an outage, where the pool would wait
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)
        try:
            counts = await self._store.vod_counts_by_state()
            kv = await self._store.kv_get_many(STATUS_KV_KEYS)
            uploads = await self._uploads() if self._uploads else {"enabled": False}
            chat = await self._chat_status() if self._chat_status is not None else None
            notes = await self._notifications() if self._notifications is not None else None
        except DatabaseUnavailable:  # it answered the ping: slow or busy, not down
            return JSONResponse({"error": "database slow: the summary was not read in time"}, 503)
        doc = summarize(
            counts, kv, version=self._version, started_at=self._started_at, now=self._clock()
        )
        doc["uploads"] = uploads
        doc["chat"] = chat
        doc["notifications"] = notes
        return JSONResponse(doc)

    async def vod_chat(self, request: Request) -> Response:
        """A VOD's chat in offset order, paged: ?from=&to= (seconds into the VOD), after, limit."""
        vod_id = str(request.path_params["vod_id"])
        query = request.query_params
        try:
            from_ms = round(float(query.get("from") or 0) * 1000)
            to_ms = round(float(query["to"]) * 1000) if query.get("to") else 2**62
            limit = int(query.get("limit", "500"))
            after = _chat_cursor(query.get("after"))
        except ValueError:
            return JSONResponse({"error": "from/to are seconds, limit a whole number, "
                                          "after a cursor from next"}, 400)  # fmt: skip
        if not 1 <= limit <= 5000:
            return JSONResponse({"error": "limit must be 1..5000"}, 400)
        if self._chat is None:
            return JSONResponse({"error": "chat is not available"}, 404)
        try:
            if await self._store.vod_get(vod_id) is None:
                return JSONResponse({"error": "no such VOD"}, 404)
            rows = await self._chat.page(vod_id, from_ms=from_ms, to_ms=to_ms, after=after,
                                         limit=limit)  # fmt: skip
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)
        last = rows[-1] if len(rows) == limit else None
        return JSONResponse({
            "items": [message_json(r) for r in rows],
            "next": f"{last['offset_ms']}:{last['msg_id']}" if last else None,
        })  # fmt: skip

    async def metrics(self, _: Request) -> Response:
        """Prometheus exposition; database gauges are refreshed at scrape time.

        `vodarchiver_database_up` is the liveness ping's answer. The figures are read once for
        all the scrapes that arrive while a read is under way; a read that does not finish in
        time although the ping answered is a slow database, not a down one: it counts in
        `vodarchiver_scrape_slow_total` and the gauges keep their last values.
        """
        try:
            await self._probe.ping()
        except DatabaseUnavailable:
            self._metrics.database_up.set(0)
            return Response(self._metrics.render(), media_type=CONTENT_TYPE)
        self._metrics.database_up.set(1)
        try:
            figures = await self._scrape_figures()
        except DatabaseUnavailable:
            self._metrics.scrape_slow.inc()
        else:
            self._metrics.record_vod_counts(figures.counts)
            self._metrics.vods_expiring_soon.set(figures.expiring_soon)
            self._metrics.vods_waiting_for_disk.set(figures.counts[VodState.WAITING_FOR_DISK])
            self._metrics.set_next_expiry(figures.next_expiry)
        return Response(self._metrics.render(), media_type=CONTENT_TYPE)

    async def _scrape_figures(self) -> ScrapeFigures:
        """One read of the scrape's figures shared by every scrape waiting for it (shielded, so a
        scraper that hangs up does not cancel the others' read)."""
        if self._scrape is None or self._scrape.done():
            self._scrape = asyncio.ensure_future(
                self._store.scrape_figures(timeout_s=self._scrape_timeout_s)
            )
            self._scrape.add_done_callback(_retrieve)
        return await asyncio.shield(self._scrape)

    async def vods(self, request: Request) -> Response:
        """VODs in queue order, paged: ?channel=&state=&limit=, then `after` (the previous page's
        `next`) or a small `offset`."""
        params = request.state.params
        limit, offset = int(params.get("limit", 50)), int(params.get("offset", 0))
        try:
            after = list_cursor(params["after"]) if "after" in params else None
        except ValueError:
            return error_response(BadInput("after", "not a cursor from `next`"))
        channel = str(params.get("channel", "")).lower() or None
        try:
            rows = await self._store.vods_list(
                channel=channel, state=params.get("state"), limit=limit + 1, offset=offset,
                after=after,
            )  # fmt: skip
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = ListCursor(**_cursor_fields(rows[-1])) if more else None
        return JSONResponse({
            "items": [vod_json({k: v for k, v in row.items() if k != "row_id"}) for row in rows],
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if more and offset + limit <= MAX_OFFSET else None,
            "next": encode_list_cursor(cursor) if cursor else None,
        })  # fmt: skip

    async def vod(self, request: Request) -> Response:
        """One VOD by its Twitch id."""
        status, doc = await self.vod_doc(str(request.path_params["vod_id"]))
        return JSONResponse(doc, status)

    async def vod_doc(self, vod_id: str, *, archive: bool = True) -> tuple[int, dict[str, Any]]:
        """`GET /vods/{id}`'s status and document; `archive=False` leaves out issue 13's fields
        (chat coverage reads every message of the VOD: the console's live parts skip it)."""
        try:
            row = await self._store.vod_get(vod_id)
            parts = await self._store.vod_uploads(vod_id) if row is not None else []
            wanted = row is not None and archive and self._archive is not None
            extra = await self._archive(vod_id) if wanted and self._archive else {}
            history = await self._operator.actions.history(vod_id) if row is not None else []
        except DatabaseUnavailable:
            return 503, {"error": "database unavailable"}
        if row is None:
            return 404, {"error": "no such VOD"}
        facts = VodFacts.from_row(row, self._clock())
        return 200, {
            **vod_json(row), "parts": [vod_json(p) for p in parts],
            "history": [vod_json(h) for h in history],
            "actions": [a.value for a in allowed_actions(facts)],
            **extra,
        }  # fmt: skip


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Collect a shared read's outcome, so a failure nobody awaited is not reported as lost."""
    if not task.cancelled():
        task.exception()


def _utc(when: datetime) -> str:
    # UTC with a `Z`: an offset's `+` would read as a space in a query string copied unencoded.
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cursor_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    expiry = row["expires_at"]
    return {"priority": int(row["priority"]), "row_id": int(row["row_id"]),
            "expiry": _utc(expiry) if expiry is not None else "infinity"}  # fmt: skip


def encode_list_cursor(cursor: ListCursor) -> str:
    """`GET /vods`'s `next`: `<priority>_<expiry>_<row id>`, the expiry in UTC or `infinity`."""
    return f"{cursor.priority}_{cursor.expiry}_{cursor.row_id}"


def list_cursor(raw: str) -> ListCursor:
    """The inverse of `encode_list_cursor`; ValueError for anything else."""
    priority, sep, rest = raw.partition("_")
    expiry, sep2, row_id = rest.rpartition("_")
    if not (sep and sep2):
        raise ValueError("cursor")
    if expiry != "infinity":
        when = datetime.fromisoformat(expiry)
        if when.tzinfo is None:
            raise ValueError("a cursor's time carries its offset")
        try:
            expiry = _utc(when)
        except OverflowError as exc:  # year 1 or 9999 moved past the calendar by its offset
            raise ValueError("time out of range") from exc
    number, rank = int(row_id), int(priority)
    if not (0 < number < 2**63 and -(2**31) <= rank < 2**31):
        raise ValueError("out of range")
    return ListCursor(rank, expiry, number)


def _chat_cursor(raw: str | None) -> tuple[int, str] | None:
    """`<offset_ms>:<msg_id>` (the `next` of the previous page) -> (offset, id)."""
    if not raw:
        return None
    offset, sep, msg_id = raw.partition(":")
    if not sep:
        raise ValueError("cursor")
    return int(offset), msg_id


# `<priority>_<expiry in UTC, or infinity>_<row id>`, as `encode_list_cursor` writes it.
LIST_CURSOR = (
    "^-?[0-9]{1,10}_(infinity|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    "([.][0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2}))_[0-9]{1,19}$"
)
# Columns whose names differ in the API: `date` is Helix's created_at; processing_error an error.
_RENAMED = {"twitch_vod_id": "id", "date": "created_at", "created_at": "discovered_at",
            "processing_error": "error"}  # fmt: skip


def vod_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A VOD row as the API shows it: Twitch's id as `id`, times in ISO 8601."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = _RENAMED.get(key, key)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def api_endpoints(api: Api) -> list[Endpoint]:
    """The declarations (parameters, bodies, answers) of the API's routes; see `webspec`."""
    limit = "How many items per page."
    db_down = {503: "The database is unavailable."}
    return [
        Endpoint("/healthz", ("GET", "HEAD"), api.healthz, "Liveness: the database answers",
                 responses={200: "ok", **db_down}, media_type="text/plain"),
        Endpoint("/readyz", ("GET", "HEAD"), api.readyz, "Readiness: every check passes",
                 responses={200: "ready", 503: "not ready, with each check's detail"}),
        Endpoint("/status", ("GET",), api.status, "The runbook's summary",
                 responses={200: "counts, averages, breaker, uploads, chat", **db_down}),
        Endpoint("/metrics", ("GET",), api.metrics, "Prometheus exposition",
                 media_type="text/plain"),
        Endpoint("/vods", ("GET",), api.vods, "VODs in queue order, paged", params=(
            Param("channel", pattern="^[A-Za-z0-9_]{1,25}$", max_length=25,
                  description="Only this channel's VODs (a Twitch login)."),
            Param("state", enum=tuple(s.value for s in VodState), description="Only this state."),
            Param("limit", "integer", minimum=1, maximum=500, default=50, description=limit),
            Param("offset", "integer", minimum=0, maximum=MAX_OFFSET, default=0,
                  description="How many items to skip (after `after` when given); deeper pages "
                              "go by `after`."),
            Param("after", pattern=LIST_CURSOR, max_length=60,
                  description="The `next` cursor of the previous page."),
        ), responses={200: "`{items, limit, offset, next_offset, next}`", **db_down}),
        Endpoint("/vods/{vod_id}", ("GET",), api.vod, "One VOD with its parts", params=(VOD_ID,),
                 responses={200: "the VOD", 404: "no such VOD", **db_down}),
        Endpoint("/vods/{vod_id}/chat", ("GET",), api.vod_chat, "A VOD's chat in offset order",
                 params=(
            VOD_ID,
            Param("from", "number", minimum=0, maximum=1e9, description="Seconds into the VOD."),
            Param("to", "number", minimum=0, maximum=1e9, description="Seconds into the VOD."),
            Param("after", pattern="^-?[0-9]{1,15}:[^\\x00-\\x1f\\x7f]{1,200}$",
                  max_length=220, description="The `next` cursor of the previous page."),
            Param("limit", "integer", minimum=1, maximum=5000, default=500, description=limit),
        ), responses={200: "`{items, next}`", 404: "no such VOD, or no chat", **db_down}),
    ]  # fmt: skip


def build_app(
    api: Api,
    metrics: Metrics,
    guard: GuardPolicy | None = None,
    extra: Sequence[Endpoint] = (),
    extra_routes: Sequence[BaseRoute] = (),
) -> ASGIApp:
    """The ASGI application: declared routes inside webguard, inside the request context.

    `guard` is the one place the safety rules are configured (`GuardPolicy.from_settings` in
    app.py); without it, loopback names only and no token. `extra` adds routes declared elsewhere;
    `extra_routes` adds undeclared ones (the console's HTML pages and files), which are not in
    `/openapi.json` but pass the same guard.
    """
    policy = guard or GuardPolicy()
    endpoints = [
        *api_endpoints(api),
        *AdminApi(api.operator).endpoints(),
        *Sessions(policy).endpoints(),
        *extra,
    ]
    spec: dict[str, Any] = {}

    async def openapi_json(_: Request) -> Response:
        return JSONResponse(spec)

    endpoints.append(Endpoint("/openapi.json", ("GET",), openapi_json,
                              "This OpenAPI document", responses={200: "OpenAPI 3.1"}))  # fmt: skip
    spec.update(document(endpoints, title="vodarchiver", version=__version__))
    app = Starlette(
        routes=[*(endpoint.route() for endpoint in endpoints), *extra_routes],
        exception_handlers={404: _not_found, 405: _wrong_method},
    )
    return RequestContext(WebGuard(app, policy), metrics)


async def _not_found(_: Request, __: Exception) -> Response:
    return JSONResponse({"error": "path: no such route (see /openapi.json)", "parameter": "path"},
                        404)  # fmt: skip


async def _wrong_method(request: Request, exc: Exception) -> Response:
    allow = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    return JSONResponse({"error": f"method: {request.method[:16]} is not allowed here",
                         "parameter": "method"}, 405, headers=allow)  # fmt: skip


def bind(addr: HostPort) -> socket.socket:
    """Bind and listen on HTTP_ADDR now; StartupError(HTTP_ADDR) when the address is unusable."""
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StartupError("HTTP_ADDR", f"cannot resolve {addr.host!r}: {exc.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = {
            errno.EADDRINUSE: "is already in use",
            errno.EADDRNOTAVAIL: "is not an address of this machine",
            errno.EACCES: "needs privileges to bind",
        }.get(exc.errno or 0, f"cannot be bound: {exc.strerror}")
        raise StartupError("HTTP_ADDR", f"{addr} {reason}") from None
    sock.setblocking(False)
    return sock


def bound_address(sock: socket.socket) -> HostPort:
    """The address a bound socket really listens on (port 0 resolved)."""
    host, port = sock.getsockname()[:2]
    return HostPort(str(host), int(port))


class _Server(uvicorn.Server):
    # The daemon owns SIGTERM/SIGINT; uvicorn must neither install handlers nor re-raise signals.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn serving `app` on an already bound socket, inside the running event loop.

    Each request's head must arrive within `header_timeout_s`, and at most `max_connections`
    are open at once (idle ones make room; busy ones get 503): see `webconn`.
    """

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        *,
        graceful_s: float = 3.0,
        header_timeout_s: float = 10.0,
        max_connections: int = 200,
    ) -> None:
        config = uvicorn.Config(
            app,
            http=GuardedH11Protocol.configured(
                header_timeout_s=header_timeout_s, max_connections=max_connections
            ),
            ws="none",  # no route speaks WebSocket; an upgrade is served as plain HTTP
            # uvicorn answers 503 once this many connections are open with a request each; one
            # more than the cap, because its count includes the connection asking.
            limit_concurrency=max_connections + 1,
            backlog=BACKLOG,  # uvicorn listens again with its own (2048) unless told
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=max(1, round(graceful_s)),
        )
        self._server = _Server(config)
        self._sock = sock

    @property
    def open_connections(self) -> int:
        """Connections open now (what HTTP_MAX_CONNECTIONS bounds)."""
        return len(self._server.server_state.connections)

    async def serve(self) -> None:
        """Serve until `stop()`."""
        await self._server.serve(sockets=[self._sock])

    def stop(self) -> None:
        """Ask the server to finish in-flight requests and return from `serve()`."""
        self._server.should_exit = True

    @property
    def started(self) -> bool:
        """True once the server accepts connections."""
        return bool(self._server.started)
