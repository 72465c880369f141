"""Operator sessions over the admin token: `POST /login`, `POST /logout`, `GET /session`.

A browser page cannot attach `Authorization: Bearer` to a plain navigation, so `POST /login`
trades ADMIN_TOKEN (JSON `{"token"}` or an urlencoded form field `token`) for the signed HttpOnly
cookie that `webguard` accepts on `/admin/` routes, and answers the session's CSRF token, which
pages send back as `X-CSRF-Token` on mutating requests. `GET /session` tells a page whether a
login is needed and hands the CSRF token again after a reload. The signing is in `webguard`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from vodarchiver.logs import get_logger
from vodarchiver.webguard import (
    GuardPolicy,
    csrf_token,
    new_session,
    set_cookie_header,
    token_matches,
    valid_session,
)
from vodarchiver.webspec import Endpoint, Param


def _is_form(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/x-www-form-urlencoded"


def _over_https(request: Request) -> bool:
    """Whether the browser reached us over https: directly, or through a TLS-terminating proxy
    that says so (`X-Forwarded-Proto`, `Forwarded: proto=`). Believing the header can only make
    the cookie stricter (Secure), never grant anything."""
    if request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if forwarded == "https":
        return True
    first = request.headers.get("forwarded", "").split(",")[0].lower()
    return any(p.strip() == "proto=https" for p in first.split(";"))


class Sessions:
    """The three session routes over one guard policy."""

    def __init__(self, policy: GuardPolicy, *, clock: Callable[[], float] = time.time) -> None:
        self._policy = policy
        self._clock = clock
        self._log = get_logger("http")

    async def login(self, request: Request) -> Response:
        """Exchange the admin token for a session cookie and the session's CSRF token."""
        if not self._policy.token_required:
            return JSONResponse({"error": "ADMIN_TOKEN is not set: there is nothing to log in "
                                 "to (admin routes answer loopback clients)", "parameter": "token"},
                                409)  # fmt: skip
        body = request.state.body or {}
        if not token_matches(self._policy, str(body.get("token", ""))):
            self._log.warning("admin_login_refused")
            return JSONResponse({"error": "token: not the ADMIN_TOKEN", "parameter": "token"}, 401)
        cookie = new_session(self._policy, self._clock())
        response: Response = JSONResponse({"csrf": csrf_token(self._policy, cookie)})
        if _is_form(request):  # the login page without its script: back to the console
            response = RedirectResponse("/", status_code=303)
        response.headers["set-cookie"] = set_cookie_header(
            cookie, max_age=self._policy.session_ttl_s, secure=_over_https(request)
        )
        self._log.info("admin_login")
        return response

    async def logout(self, request: Request) -> Response:
        """Clear the session cookie (a stateless session simply stops being sent)."""
        response = JSONResponse({"authenticated": False})
        response.headers["set-cookie"] = set_cookie_header(
            "", max_age=0, secure=_over_https(request)
        )
        return response

    async def session(self, request: Request) -> Response:
        """Whether a login is required, whether this request is authenticated, and its CSRF."""
        actor = getattr(request.state, "actor", None)
        cookie = valid_session(self._policy, request.headers.get("cookie", ""), self._clock())
        required = self._policy.token_required
        authenticated = actor in ("token", "session") or (not required and actor == "loopback")
        csrf = csrf_token(self._policy, cookie) if actor == "session" and cookie else None
        return JSONResponse(
            {"required": required, "authenticated": authenticated, "actor": actor, "csrf": csrf}
        )

    def endpoints(self) -> list[Endpoint]:
        """The route declarations."""
        return [
            Endpoint(
                "/login", ("POST",), self.login,
                summary="Trade ADMIN_TOKEN for a session cookie and its CSRF token",
                body=(Param("token", location="body", required=True, max_length=512,
                            description="The ADMIN_TOKEN."),),
                form=True,
                responses={200: "Logged in: `{\"csrf\"}`; sets the `vodarchiver_session` cookie.",
                           303: "Logged in from the login page's form (no script): to `/`.",
                           401: "Not the ADMIN_TOKEN.", 409: "ADMIN_TOKEN is not set."},
                tags=("session",),
            ),
            Endpoint(
                "/logout", ("POST",), self.logout, summary="Clear the session cookie",
                body=(), responses={200: "Logged out."}, tags=("session",),
            ),
            Endpoint(
                "/session", ("GET",), self.session,
                summary="Whether a login is required, who this request is, its CSRF token",
                responses={200: "`{\"required\", \"authenticated\", \"actor\", \"csrf\"}`."},
                tags=("session",),
            ),
        ]  # fmt: skip
