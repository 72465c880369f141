"""The console's routes: HTML pages under `/` and `/ui/...`, each with a JSON twin.

The dashboard reuses the API's own handlers for `/status` and `/readyz` (their JSON is read, not
recomputed) and `GET /vods/{id}` for a VOD's page, so the console can never disagree with the
API. Its own reads (VODs at risk, transfers, keyset pages, channels, chat search) are named
statements in `db/console.sql`. Live parts of a page are HTML fragments the page's script fetches
again every second or two. Every response carries a strict Content-Security-Policy: the script
and the stylesheet are files served from here, nothing inline.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from vodarchiver.chat_command import chat_chunks
from vodarchiver.chat_export import FORMATS, message_json
from vodarchiver.console import views
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.console_store import SORTS, ConsoleStore, Cursor, VodFilter
from vodarchiver.errors import DatabaseUnavailable, DataRejected
from vodarchiver.models import VodState
from vodarchiver.pipeline.quota import next_reset
from vodarchiver.pipeline.rules import retention_days
from vodarchiver.webspec import CONTROL_CHARS, VOD_ID, shown_name

CSP = (
    "default-src 'self'; img-src 'self' https:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PAGE_SIZE = 50
CHAT_PAGE = 100
_STATES = tuple(s.value for s in VodState)
_EXPORT_TYPES = {"json": "application/json", "ndjson": "application/x-ndjson",
                 "srt": "application/x-subrip", "ass": "text/x-ssa"}  # fmt: skip

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class ConsoleOptions:
    """What the console needs from the settings."""

    data_dir: Path
    disk_min_free_bytes: int
    at_risk_window_s: float
    channels: tuple[str, ...] = ()
    retention_overrides: Mapping[str, int] = field(default_factory=dict)


# `GET /vods/{id}`'s status and document (`Api.vod_doc`); archive=False skips issue 13's fields.
VodDoc = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]
# A VOD's audit rows (`vod_audit`), newest first: the operator's `audit_page` for one VOD.
Timeline = Callable[[str], Awaitable[list[dict[str, Any]]]]
TIMELINE_LIMIT = 200


@dataclass(frozen=True)
class ApiViews:
    """The API handlers the console reads instead of recomputing what they answer."""

    status: Handler
    readyz: Handler
    vod: VodDoc
    timeline: Timeline | None = None


class BadParam(ValueError):
    """A query parameter the page cannot use; the message names it."""


def _headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


class _Static:
    """StaticFiles with the console's security headers and a short cache."""

    def __init__(self) -> None:
        self._files = StaticFiles(directory=str(Path(__file__).parent / "static"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                headers.append((b"cache-control", b"no-cache"))
                message["headers"] = headers
            await send(message)

        await self._files(scope, receive, with_headers)


def _api_doc(response: Response) -> dict[str, Any]:
    body = response.body
    doc = json.loads(bytes(body)) if body else {}
    return doc if isinstance(doc, dict) else {}


class Console:
    """The console's handlers over the API views, the console queries and the chat store."""

    def __init__(
        self,
        *,
        api: ApiViews,
        store: ConsoleStore,
        chat: ChatStore | None,
        options: ConsoleOptions,
        chat_status: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._store = store
        self._chat = chat
        self._options = options
        self._chat_status = chat_status
        self._clock = clock
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("vodarchiver.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._env.filters.update(
            bytes=views.human_bytes, duration=views.human_duration, hms=views.hms,
            iso=views.iso,
        )  # fmt: skip

    def routes(self) -> list[BaseRoute]:
        """Every console route, for `build_app`."""
        return [
            Route("/", self._checked(self.dashboard), methods=["GET"]),
            Route("/ui/dashboard.json", self._checked(self.dashboard_json), methods=["GET"]),
            Route("/ui/dashboard/live", self._checked(self.dashboard_live), methods=["GET"]),
            Route("/ui/vods", self._checked(self.vods), methods=["GET"]),
            Route("/ui/vods.json", self._checked(self.vods_json), methods=["GET"]),
            Route("/ui/vods/{vod_id}", self._checked(self.vod), methods=["GET"]),
            Route("/ui/vods/{vod_id}/live", self._checked(self.vod_live), methods=["GET"]),
            Route("/ui/vods/{vod_id}/chat", self._checked(self.chat), methods=["GET"]),
            Route("/ui/vods/{vod_id}/chat.json", self._checked(self.chat_json), methods=["GET"]),
            Route(
                "/ui/vods/{vod_id}/chat/export", self._checked(self.chat_export), methods=["GET"]
            ),
            Route("/ui/channels", self._checked(self.channels), methods=["GET"]),
            Route("/ui/channels.json", self._checked(self.channels_json), methods=["GET"]),
            Route("/ui/login", self._checked(self.login), methods=["GET"]),
            Mount("/ui/static", app=_Static(), name="static"),
        ]

    def _checked(self, handler: Handler) -> Handler:
        """A handler behind the console's input rules: a VOD id as the API declares it, no
        control characters in any parameter, and a value the database refuses a 400, not a 500."""

        async def checked(request: Request) -> Response:
            problem = _bad_input(request)
            if problem is not None:
                return self._error(request, 400, problem)
            try:
                return await handler(request)
            except DataRejected as exc:
                return self._error(request, 400, f"a parameter was refused: {exc}")

        return checked

    # rendering

    def render(self, template: str, http_status: int = 200, **context: Any) -> Response:
        """A template as an HTML response with the console's security headers."""
        context.setdefault("nav", "")
        context.setdefault("title", "vodarchiver")
        html = self._env.get_template(template).render(**context)
        return _headers(HTMLResponse(html, http_status))

    def _json(self, doc: Any, status: int = 200) -> Response:
        return _headers(JSONResponse(doc, status))

    def _error(self, request: Request, status: int, message: str) -> Response:
        if request.url.path.endswith(".json"):
            return self._json({"error": message}, status)
        return self.render("error.html", status, title="Error", message=message, status=status)

    # dashboard

    async def _dashboard(self, request: Request) -> dict[str, Any]:
        now = self._clock()
        status, ready, at_risk, active, disk = await asyncio.gather(
            self._api.status(request), self._api.readyz(request),
            self._store.at_risk(self._options.at_risk_window_s), self._store.active(),
            asyncio.to_thread(self._disk_free),
        )  # fmt: skip
        if status.status_code == 503:
            raise DatabaseUnavailable("database unavailable")
        return views.dashboard_json(
            status=_api_doc(status), ready=_api_doc(ready),
            at_risk=views.at_risk_json(at_risk, now),
            active=[views.transfer_json(r, now) for r in active],
            disk_free=disk, disk_min_free=self._options.disk_min_free_bytes,
            window_s=self._options.at_risk_window_s, quota_resets_at=next_reset(now),
        )  # fmt: skip

    def _disk_free(self) -> int | None:
        try:
            return shutil.disk_usage(self._options.data_dir).free
        except OSError:
            return None

    async def dashboard(self, request: Request) -> Response:
        """`/`: what is at risk, what is moving, what is wrong."""
        try:
            doc = await self._dashboard(request)
        except DatabaseUnavailable:
            return self._error(request, 503, "The database is unavailable.")
        return self.render("dashboard.html", title="Dashboard", d=doc, nav="dashboard")

    async def dashboard_live(self, request: Request) -> Response:
        """The dashboard's live part, fetched again by the page every second."""
        try:
            doc = await self._dashboard(request)
        except DatabaseUnavailable:
            return self.render("unavailable.html", 503)
        return self.render("dashboard_live.html", d=doc)

    async def dashboard_json(self, request: Request) -> Response:
        """The dashboard's JSON twin."""
        try:
            return self._json(await self._dashboard(request))
        except DatabaseUnavailable:
            return self._json({"error": "database unavailable"}, 503)

    # VOD list

    async def _vods(self, request: Request) -> dict[str, Any]:
        query = request.query_params
        state = query.get("state") or None
        if state is not None and state not in _STATES:
            raise BadParam(f"state: unknown state {state[:40]!r}")
        sort = query.get("sort") or "expiry"
        if sort not in SORTS:
            raise BadParam(f"sort: must be one of {', '.join(SORTS)}")
        try:
            after = Cursor.decode(query["after"]) if query.get("after") else None
        except ValueError:
            raise BadParam("after: not a cursor from a previous page") from None
        try:
            limit = int(query.get("limit") or PAGE_SIZE)
        except ValueError:
            raise BadParam("limit: must be a whole number") from None
        if not 1 <= limit <= 500:
            raise BadParam("limit: must be 1..500")
        where = VodFilter(
            channel=(query.get("channel") or "").strip().lower() or None,
            state=state,
            title=(query.get("q") or "").strip()[:200] or None,
        )
        rows, next_cursor = await self._store.vods_page(where, sort=sort, after=after, limit=limit)
        params = {"channel": where.channel or "", "state": state or "", "q": where.title or "",
                  "sort": sort}  # fmt: skip
        return {
            "items": [{
                "id": r["twitch_vod_id"], "channel": r["channel"], "title": r["title"],
                "state": r["state"], "date": views.iso(r["date"]),
                "expires_at": views.iso(r["expires_at"]), "duration_s": r["duration_s"],
                "youtube_url": r["youtube_url"],
            } for r in rows],
            "next": next_cursor.encode() if next_cursor else None,
            "filter": params,
            "limit": limit,
        }  # fmt: skip

    async def vods(self, request: Request) -> Response:
        """`/ui/vods`: the VODs, filtered and sorted, a keyset page at a time."""
        try:
            doc = await self._vods(request)
        except BadParam as exc:
            return self._error(request, 400, str(exc))
        except DatabaseUnavailable:
            return self._error(request, 503, "The database is unavailable.")
        return self.render("vods.html", title="VODs", d=doc, states=_STATES,
                            channels=self._options.channels, nav="vods")  # fmt: skip

    async def vods_json(self, request: Request) -> Response:
        """The VOD list's JSON twin."""
        try:
            return self._json(await self._vods(request))
        except BadParam as exc:
            return self._json({"error": str(exc)}, 400)
        except DatabaseUnavailable:
            return self._json({"error": "database unavailable"}, 503)

    # one VOD

    async def _vod(self, request: Request, *, archive: bool = False) -> tuple[int, dict[str, Any]]:
        """The VOD as `GET /vods/{id}` answers it; without chat coverage and chapters unless
        `archive` (coverage reads every message of the VOD: not for pages refreshed every 2 s)."""
        return await self._api.vod(str(request.path_params["vod_id"]), archive=archive)

    async def _vod_page(
        self, request: Request, *, archive: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """The VOD as the API answers it, plus its timeline from the audit table."""
        code, doc = await self._vod(request, archive=archive)
        if code == 200:
            rows: list[dict[str, Any]] = []
            if self._api.timeline is not None:
                try:
                    rows = await self._api.timeline(str(doc["id"]))
                except DatabaseUnavailable:
                    return 503, {"error": "The database is unavailable."}
            doc["timeline"] = views.timeline_json(rows)
        return code, doc

    async def vod(self, request: Request) -> Response:
        """`/ui/vods/{id}`: metadata, parts, muted ranges, chapters, the last error, actions."""
        code, doc = await self._vod_page(request, archive=True)
        if code != 200:
            return self._error(request, code, doc.get("error", "error"))
        return self.render("vod.html", title=doc.get("title") or doc["id"], v=doc,
                            actions=views.vod_actions(doc), thumb=views.thumbnail(
                                doc.get("thumbnail_url")), nav="vods")  # fmt: skip

    async def vod_live(self, request: Request) -> Response:
        """The VOD page's live part: state, progress, error, actions and the timeline."""
        code, doc = await self._vod_page(request)
        if code != 200:
            return self.render("unavailable.html", code)
        return self.render("vod_live.html", v=doc, actions=views.vod_actions(doc))

    # chat

    async def _chat_doc(self, request: Request) -> dict[str, Any]:
        vod_id = str(request.path_params["vod_id"])
        query = request.query_params
        try:
            from_ms = views.parse_offset(query["t"]) if query.get("t") else 0
        except ValueError:
            raise BadParam("t: a time into the VOD as h:mm:ss, m:ss or seconds") from None
        try:
            after = _chat_cursor(query.get("after"))
        except ValueError:
            raise BadParam("after: not a cursor from a previous page") from None
        try:
            limit = int(query.get("limit") or CHAT_PAGE)
        except ValueError:
            raise BadParam("limit: must be a whole number") from None
        if not 1 <= limit <= 1000:
            raise BadParam("limit: must be 1..1000")
        text = (query.get("q") or "").strip()[:200] or None
        user = (query.get("user") or "").strip().lstrip("@")[:50] or None
        if self._chat is None:
            raise LookupError("chat is not available")
        if text or user:
            rows, resume = await self._store.chat_search(
                vod_id, from_ms=from_ms, after=after, text=text, user=user, limit=limit
            )
            partial = resume is not None and len(rows) < limit
        else:
            rows = await self._chat.page(vod_id, from_ms=from_ms, to_ms=2**62, after=after,
                                         limit=limit)  # fmt: skip
            last = rows[-1] if len(rows) == limit else None
            resume = (int(last["offset_ms"]), str(last["msg_id"])) if last else None
            partial = False
        items = []
        for row in rows:
            item = message_json(row)
            item["offset"] = views.hms(item["offset_ms"])
            item["emote_names"] = views.emote_names(item["text"], item["emotes"])
            items.append(item)
        return {
            "vod_id": vod_id,
            "items": items,
            "next": f"{resume[0]}:{resume[1]}" if resume else None,
            # A search that stopped at its time budget: fewer matches than a page, more to read.
            "searched_to": views.hms(resume[0]) if partial and resume else None,
            "filter": {"q": text or "", "user": user or "", "t": query.get("t") or ""},
            "formats": list(FORMATS),
        }

    async def chat(self, request: Request) -> Response:
        """`/ui/vods/{id}/chat`: the chat viewer."""
        code, vod = await self._vod(request)
        if code != 200:
            return self._error(request, code, vod.get("error", "error"))
        try:
            doc = await self._chat_doc(request)
        except BadParam as exc:
            return self._error(request, 400, str(exc))
        except LookupError as exc:
            return self._error(request, 404, str(exc))
        except DatabaseUnavailable:
            return self._error(request, 503, "The database is unavailable.")
        return self.render("chat.html", title=f"Chat of {vod.get('title') or vod['id']}",
                            v=vod, d=doc, nav="vods")  # fmt: skip

    async def chat_json(self, request: Request) -> Response:
        """The chat viewer's JSON twin."""
        code, vod = await self._vod(request)
        if code != 200:
            return self._json({"error": vod.get("error", "error")}, code)
        try:
            return self._json(await self._chat_doc(request))
        except BadParam as exc:
            return self._json({"error": str(exc)}, 400)
        except LookupError as exc:
            return self._json({"error": str(exc)}, 404)
        except DatabaseUnavailable:
            return self._json({"error": "database unavailable"}, 503)

    async def chat_export(self, request: Request) -> Response:
        """A VOD's whole chat as a download: ?format=json|ndjson|srt|ass."""
        fmt = request.query_params.get("format") or "json"
        if fmt not in FORMATS:
            return self._json({"error": f"format: must be one of {', '.join(FORMATS)}"}, 400)
        code, vod = await self._vod(request)
        if code != 200:
            return self._json({"error": vod.get("error", "error")}, code)
        if self._chat is None:
            return self._json({"error": "chat is not available"}, 404)
        name = f"chat-{vod['id']}.{fmt}"
        chat = self._chat

        async def body() -> AsyncIterator[bytes]:
            async for chunk in chat_chunks(chat, str(vod["id"]), fmt):
                yield chunk.encode()

        return _headers(StreamingResponse(
            body(), media_type=_EXPORT_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        ))  # fmt: skip

    # channels

    async def _channels(self) -> dict[str, Any]:
        rows = await self._store.channels(self._options.channels)
        chat = await self._chat_status() if self._chat_status is not None else None
        recorders = (chat or {}).get("recorders", {})
        recorded_by = (chat or {}).get("recorded_by", {})
        items = []
        for r in rows:
            kind = r["broadcaster_type"]
            items.append({
                "login": r["login"], "display_name": r["display_name"],
                "retention_days": retention_days(r["login"], kind or "",
                                                 self._options.retention_overrides)
                if kind is not None or r["login"] in self._options.retention_overrides
                else None,
                "broadcaster_type": kind,
                "last_polled_at": views.iso(r["last_polled_at"]),
                "last_success_at": views.iso(r["last_success_at"]),
                "last_error": r["last_error"], "live_vod": r["live_vod"], "vods": r["vods"],
                "chat": recorders.get(r["login"]),
                "chat_recorded_by": [
                    {"owner": h["owner"], "host": h["owner"].split(":", 1)[0],
                     "this_replica": h["this_replica"]}
                    for h in recorded_by.get(r["login"], [])
                ],
            })  # fmt: skip
        return {"items": items, "chat_enabled": chat is not None}

    async def channels(self, request: Request) -> Response:
        """`/ui/channels`: each configured channel."""
        try:
            doc = await self._channels()
        except DatabaseUnavailable:
            return self._error(request, 503, "The database is unavailable.")
        return self.render("channels.html", title="Channels", d=doc, nav="channels")

    async def channels_json(self, _: Request) -> Response:
        """The channels page's JSON twin."""
        try:
            return self._json(await self._channels())
        except DatabaseUnavailable:
            return self._json({"error": "database unavailable"}, 503)

    async def login(self, _: Request) -> Response:
        """`/ui/login`: the ADMIN_TOKEN form (the script posts it to `POST /login`)."""
        return self.render("login.html", title="Log in", nav="login")


def _chat_cursor(raw: str | None) -> tuple[int, str] | None:
    """`<offset_ms>:<msg_id>` (the `next` of the previous page) -> (offset, id)."""
    if not raw:
        return None
    offset, sep, msg_id = raw.partition(":")
    if not sep or not -(2**62) < int(offset) < 2**62:
        raise ValueError("cursor")
    return int(offset), msg_id


_VOD_ID = re.compile(VOD_ID.pattern or "")


def _bad_input(request: Request) -> str | None:
    """Why the request's path or query cannot be used (None: it can)."""
    vod_id = request.path_params.get("vod_id")
    if vod_id is not None and not _VOD_ID.search(str(vod_id)):
        return "vod_id: must be a Twitch VOD id"
    for name, value in request.query_params.multi_items():
        if CONTROL_CHARS.search(value):
            return f"{shown_name(name)}: control characters are not allowed"
    return None
