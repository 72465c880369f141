"""The operator's HTTP API under `/admin/`: actions on VODs, on the daemon, the monitor, the audit.

`POST /admin/vods/{id}/{cancel|restore|retry|reprocess|skip|priority}` answers 200 with
`{"id", "action", "from_state", "state"}`, 409 with `{"error", "state", "allowed"}` when the
VOD's state does not allow the action (the lifecycle says which would), 404 for an unknown VOD.
Every route is a `webspec.Endpoint`: its parameters and body are declared once, validated before
the handler runs (a 400 naming the parameter) and published in `/openapi.json`. Who asked
(`token`, `session` or `loopback`, set by `webguard` in front of every `/admin/` route) and the
request's correlation id go into the audit table with the transition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vodarchiver.db.actions import Actor
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.lifecycle import Action
from vodarchiver.logs import current_corr
from vodarchiver.pipeline.operator import Operator
from vodarchiver.webspec import Endpoint, Param

MAX_VOD_ID = 32
PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_PAUSE_MINUTES = 60 * 24 * 366
ADMIN_VOD_ID = Param(
    "vod_id", location="path", required=True, pattern=f"^[0-9]{{1,{MAX_VOD_ID}}}$",
    max_length=MAX_VOD_ID, description="The Twitch VOD id (digits).",
)  # fmt: skip
_DB_DOWN = {503: "The database is unavailable."}
_ACTION_SUMMARY = {
    Action.CANCEL: "Stop the VOD's work now and keep it from being archived (reversible)",
    Action.RESTORE: "Bring back a canceled, skipped, failed or gone VOD",
    Action.RETRY: "Make the VOD due now",
    Action.REPROCESS: "Download and publish the VOD again as new videos",
    Action.SKIP: "Never archive the VOD",
    Action.PRIORITY: "Set the VOD's queue priority",
}
_ACTION_BODY: dict[Action, tuple[Param, ...]] = {
    Action.PRIORITY: (Param("priority", "integer", "body", required=True,
                            minimum=PRIORITY_RANGE[0], maximum=PRIORITY_RANGE[1],
                            description="Higher is taken first; 0 is the default."),),
    Action.REPROCESS: (Param("delete_old", "boolean", "body",
                             description="Delete the old videos once the new parts are "
                                         "confirmed."),),
}  # fmt: skip


def actor_of(request: Request) -> Actor:
    """Who asked, as the admin guard recorded it, and the request's correlation id."""
    state = request.scope.get("state") or {}
    name = state.get("actor") if isinstance(state, dict) else None
    return Actor(str(name or "loopback"), current_corr())


def _params(request: Request) -> dict[str, Any]:
    return dict(getattr(request.state, "params", None) or {})


def _body(request: Request) -> dict[str, Any]:
    return dict(getattr(request.state, "body", None) or {})


def _unavailable() -> JSONResponse:
    return JSONResponse({"error": "database unavailable"}, 503)


class AdminApi:
    """The `/admin/` route handlers over the operator."""

    def __init__(self, operator: Operator) -> None:
        self._operator = operator

    def endpoints(self) -> list[Endpoint]:
        """Every admin route, declared (the guard in front of them is the web layer's)."""
        out = [self._action_endpoint(action) for action in Action]
        out += [
            Endpoint("/admin/circuit/reset", ("POST",), self.circuit_reset,
                     "Close the upload circuit breaker", body=(),
                     responses={200: "`{\"circuit_state\": \"closed\"}`", **_DB_DOWN}),
            Endpoint("/admin/uploads/pause", ("POST",), self.uploads_pause,
                     "Pause uploads on every replica", body=(
                Param("minutes", "integer", "body", minimum=1, maximum=MAX_PAUSE_MINUTES,
                      description="How long; without it, until resumed."),
                Param("reason", location="body", max_length=200, pattern="^.{1,200}$",
                      printable=True, description="Shown in /status and the monitor."),
            ), responses={200: "`{\"paused\", \"until\", \"reason\"}`", **_DB_DOWN}),
            Endpoint("/admin/uploads/resume", ("POST",), self.uploads_resume,
                     "Lift any upload pause", body=(),
                     responses={200: "`{\"paused\": false}`", **_DB_DOWN}),
            Endpoint("/admin/monitor", ("GET",), self.monitor,
                     "Per stage the last claim, success and failure; workers, leases, pauses",
                     responses={200: "the monitor document", **_DB_DOWN}),
            Endpoint("/admin/audit", ("GET",), self.audit,
                     "The audit table, newest first", params=(
                Param("vod", pattern=f"^[0-9]{{1,{MAX_VOD_ID}}}$", max_length=MAX_VOD_ID,
                      description="Only this VOD's rows."),
                Param("limit", "integer", minimum=1, maximum=500, default=100,
                      description="How many rows."),
                Param("after", "integer", minimum=1, maximum=2**62,
                      description="The `next` of the previous page."),
            ), responses={200: "`{items, next}`", **_DB_DOWN}),
        ]  # fmt: skip
        return out

    def _action_endpoint(self, action: Action) -> Endpoint:
        async def handler(request: Request) -> Response:
            return await self.vod_action(request, action)

        return Endpoint(
            f"/admin/vods/{{vod_id}}/{action.value}", ("POST",), handler,
            _ACTION_SUMMARY.get(action, action.value), params=(ADMIN_VOD_ID,),
            body=_ACTION_BODY.get(action, ()),
            responses={200: "`{id, action, from_state, state}`", 404: "No such VOD.",
                       409: "Not allowed in the VOD's state: `{error, state, allowed}`.",
                       **_DB_DOWN},
            tags=("operator",),
        )  # fmt: skip

    async def vod_action(self, request: Request, action: Action) -> Response:
        """Apply an operator action to a VOD."""
        vod_id = str(_params(request)["vod_id"])
        body = _body(request)
        priority = int(body.get("priority", 0)) if action is Action.PRIORITY else 0
        delete_old = bool(body.get("delete_old", False))
        try:
            outcome = await self._operator.act(
                vod_id, action, actor_of(request), priority=priority, delete_old=delete_old
            )
        except DatabaseUnavailable:
            return _unavailable()
        if not outcome.found:
            return JSONResponse({"error": "no such VOD"}, 404)
        if outcome.record is None:
            return JSONResponse({"error": outcome.reason, "state": outcome.state,
                                 "allowed": list(outcome.allowed)}, 409)  # fmt: skip
        answer: dict[str, Any] = {
            "id": vod_id,
            "action": action.value,
            "from_state": outcome.state,
            "state": outcome.record.target,
        }
        if action is Action.CANCEL:
            answer["previous_state"] = outcome.state  # the answer the cancel route gave before
        if action is Action.REPROCESS:
            answer["generation"] = outcome.generation
        if action is Action.PRIORITY:
            answer["priority"] = priority
        return JSONResponse(answer)

    async def circuit_reset(self, request: Request) -> Response:
        """Close the circuit breaker (the runbook's three keys deleted)."""
        try:
            await self._operator.circuit_reset(actor_of(request))
        except DatabaseUnavailable:
            return _unavailable()
        return JSONResponse({"circuit_state": "closed"})

    async def uploads_pause(self, request: Request) -> Response:
        """Pause uploads on every replica: `{"minutes": n}` (else until resumed), `reason`."""
        body = _body(request)
        until = None
        if "minutes" in body:
            until = datetime.now(UTC) + timedelta(minutes=int(body["minutes"]))
        reason = str(body.get("reason", "operator"))
        try:
            await self._operator.uploads_pause(actor_of(request), until=until, reason=reason)
        except DatabaseUnavailable:
            return _unavailable()
        return JSONResponse({"paused": True, "until": until.isoformat() if until else None,
                             "reason": reason})  # fmt: skip

    async def uploads_resume(self, request: Request) -> Response:
        """Lift any upload pause."""
        try:
            await self._operator.uploads_resume(actor_of(request))
        except DatabaseUnavailable:
            return _unavailable()
        return JSONResponse({"paused": False})

    async def monitor(self, _: Request) -> Response:
        """The runbook's extended internal stats."""
        try:
            return JSONResponse(await self._operator.monitor())
        except DatabaseUnavailable:
            return _unavailable()

    async def audit(self, request: Request) -> Response:
        """The audit table, newest first: `?vod=&limit=&after=` (after: the previous `next`)."""
        params = _params(request)
        limit = int(params.get("limit", 100))
        try:
            rows = await self._operator.actions.audit_page(
                vod_id=params.get("vod"), before=params.get("after"), limit=limit
            )
        except DatabaseUnavailable:
            return _unavailable()
        items = [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
                 for r in rows]  # fmt: skip
        return JSONResponse(
            {"items": items, "next": str(rows[-1]["id"]) if len(rows) == limit else None}
        )
