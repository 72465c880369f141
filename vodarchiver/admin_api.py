"""The operator's HTTP API under `/admin/`: actions on VODs, on the daemon, the monitor, the audit.

`POST /admin/vods/{id}/{cancel|restore|retry|reprocess|skip|priority}` answers 200 with
`{"id", "action", "from_state", "state"}`, 409 with `{"error", "state", "allowed"}` when the
VOD's state does not allow the action (the lifecycle says which would), 404 for an unknown VOD.
Who asked (`token`, `session` or `loopback`, set by the admin guard in front of these routes) and
the request's correlation id go into the audit table with the transition.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vodarchiver.db.actions import Actor
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.lifecycle import Action
from vodarchiver.logs import current_corr
from vodarchiver.pipeline.operator import Operator

MAX_VOD_ID = 32
PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_PAUSE_MINUTES = 60 * 24 * 366
MAX_BODY_BYTES = 16 * 1024


class BadInput(ValueError):
    """A request parameter that cannot be used; the message names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def bad_input(exc: BadInput) -> JSONResponse:
    """The 400 answer naming the parameter."""
    return JSONResponse({"error": str(exc), "parameter": exc.parameter}, 400)


def vod_id_param(request: Request) -> str:
    """The path's VOD id: Twitch's, digits only."""
    raw = str(request.path_params["vod_id"])
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) <= MAX_VOD_ID):
        raise BadInput("vod_id", f"vod_id must be a Twitch VOD id (1 to {MAX_VOD_ID} digits)")
    return raw


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or {} for an empty body."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BadInput("body", f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("body", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadInput("body", "the body must be a JSON object")
    return body


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(name, f"{name} must be a whole number from {low} to {high}")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise BadInput(name, f"{name} must be a whole number from {low} to {high}")
    if not low <= int(value) <= high:
        raise BadInput(name, f"{name} must be a whole number from {low} to {high}")
    return int(value)


def actor_of(request: Request) -> Actor:
    """Who asked, as the admin guard recorded it, and the request's correlation id."""
    state = request.scope.get("state") or {}
    name = state.get("actor") if isinstance(state, dict) else None
    return Actor(str(name or "loopback"), current_corr())


class AdminApi:
    """The `/admin/` route handlers over the operator."""

    def __init__(self, operator: Operator) -> None:
        self._operator = operator

    def routes(self) -> list[Route]:
        """Every admin route (the guard in front of them is the web layer's)."""
        return [
            Route("/admin/vods/{vod_id}/{action}", self.vod_action, methods=["POST"]),
            Route("/admin/circuit/reset", self.circuit_reset, methods=["POST"]),
            Route("/admin/uploads/pause", self.uploads_pause, methods=["POST"]),
            Route("/admin/uploads/resume", self.uploads_resume, methods=["POST"]),
            Route("/admin/monitor", self.monitor, methods=["GET"]),
            Route("/admin/audit", self.audit, methods=["GET"]),
        ]

    async def vod_action(self, request: Request) -> Response:
        """Apply an operator action to a VOD."""
        try:
            vod_id = vod_id_param(request)
            raw_action = str(request.path_params["action"])
            try:
                action = Action(raw_action)
            except ValueError:
                return JSONResponse({"error": "no such action", "parameter": "action",
                                     "actions": [a.value for a in Action]}, 404)  # fmt: skip
            body = await json_body(request)
            priority = (_int_field(body, "priority", *PRIORITY_RANGE)
                        if action is Action.PRIORITY else 0)  # fmt: skip
            delete_old = _bool_field(body, "delete_old")
        except BadInput as exc:
            return bad_input(exc)
        try:
            outcome = await self._operator.act(
                vod_id, action, actor_of(request), priority=priority, delete_old=delete_old
            )
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)
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
            await json_body(request)
            await self._operator.circuit_reset(actor_of(request))
        except BadInput as exc:
            return bad_input(exc)
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)
        return JSONResponse({"circuit_state": "closed"})

    async def uploads_pause(self, request: Request) -> Response:
        """Pause uploads on every replica: `{"minutes": n}` (else until resumed), `reason`."""
        try:
            body = await json_body(request)
            until = None
            if "minutes" in body:
                minutes = _int_field(body, "minutes", 1, MAX_PAUSE_MINUTES)
                until = datetime.now(UTC) + timedelta(minutes=minutes)
            reason = _reason_field(body)
            await self._operator.uploads_pause(actor_of(request), until=until, reason=reason)
        except BadInput as exc:
            return bad_input(exc)
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)
        return JSONResponse({"paused": True, "until": until.isoformat() if until else None,
                             "reason": reason})  # fmt: skip

    async def uploads_resume(self, request: Request) -> Response:
        """Lift any upload pause."""
        try:
            await json_body(request)
            await self._operator.uploads_resume(actor_of(request))
        except BadInput as exc:
            return bad_input(exc)
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)
        return JSONResponse({"paused": False})

    async def monitor(self, _: Request) -> Response:
        """The runbook's extended internal stats."""
        try:
            return JSONResponse(await self._operator.monitor())
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)

    async def audit(self, request: Request) -> Response:
        """The audit table, newest first: `?vod=&limit=&after=` (after: the previous `next`)."""
        query = request.query_params
        try:
            vod = _vod_query(query.get("vod"))
            limit = _query_int(query.get("limit"), "limit", 1, 500, default=100)
            after = _query_int(query.get("after"), "after", 1, 2**62, default=None)
        except BadInput as exc:
            return bad_input(exc)
        try:
            rows = await self._operator.actions.audit_page(vod_id=vod, before=after, limit=limit)
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)
        items = [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
                 for r in rows]  # fmt: skip
        return JSONResponse(
            {"items": items, "next": str(rows[-1]["id"]) if len(rows) == limit else None}
        )


def _bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadInput(name, f"{name} must be true or false")
    return value


def _reason_field(body: dict[str, Any]) -> str:
    reason = body.get("reason", "operator")
    if not isinstance(reason, str) or not reason.isprintable() or not 0 < len(reason) <= 200:
        raise BadInput("reason", "reason must be printable text of 1 to 200 characters")
    return reason


def _vod_query(raw: str | None) -> str | None:
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_VOD_ID):
        raise BadInput("vod", "vod must be a Twitch VOD id")
    return raw


def _query_int(raw: str | None, name: str, low: int, high: int, *, default: int | None
               ) -> Any:  # fmt: skip
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not low <= int(raw) <= high:
        raise BadInput(name, f"{name} must be a whole number from {low} to {high}")
    return int(raw)
