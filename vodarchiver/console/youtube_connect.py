"""Connect YouTube from the browser: Google's consent flow run by the daemon, and a token by API.

`GET /admin/youtube/connect` sends the browser to GOOGLE_AUTH_URL with a fresh `state` and a PKCE
S256 challenge (RFC 7636); Google sends it back to `GET /ui/youtube/callback` on this daemon with
a code, which is exchanged at GOOGLE_TOKEN_URL with the verifier. The refresh token is stored
sealed as a new generation (`store_refresh_token`, the same path as `vodarchiver auth youtube`),
and the upload stage, which notices a new generation, resumes waiting uploads without a restart.
`POST /admin/youtube/token` stores a refresh token given in a JSON body: how the CLI stores one
while the daemon holds the embedded database.

The callback is not under `/admin/`: Google's redirect is a cross-site navigation, on which the
browser withholds a SameSite=Strict session cookie. It needs none: it acts only on a `state` this
daemon issued (random, one use, ten minutes), which a third party cannot know. A Desktop OAuth
client accepts any loopback redirect (`http://127.0.0.1:<port>/...`), so the redirect URI is the
address the browser used to reach the daemon.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from vodarchiver.db.uploads import UploadStore
from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.logs import get_logger
from vodarchiver.values import Secret
from vodarchiver.webspec import Endpoint, Param
from vodarchiver.youtube.consent import SCOPES
from vodarchiver.youtube.crypto import TokenCipher
from vodarchiver.youtube.oauth import store_refresh_token

STATE_TTL_S = 600.0
MAX_PENDING = 32  # flows started and not finished; the oldest is dropped past this
CALLBACK_PATH = "/ui/youtube/callback"
MAX_TOKEN_LENGTH = 2048


@dataclass(frozen=True)
class GoogleClient:
    """The OAuth client the flow runs as, and Google's endpoints."""

    client_id: str
    client_secret: Secret
    auth_url: str
    token_url: str


@dataclass(frozen=True)
class _Pending:
    verifier: str
    redirect_uri: str
    expires: float


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier (RFC 7636, 43..128 characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)[:96]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def consent_url(client: GoogleClient, *, redirect_uri: str, state: str, challenge: str) -> str:
    """Google's consent page for an offline (refresh-token) grant of the upload scopes."""
    query = urlencode({
        "client_id": client.client_id, "redirect_uri": redirect_uri, "response_type": "code",
        "scope": " ".join(SCOPES), "state": state, "code_challenge": challenge,
        "code_challenge_method": "S256", "access_type": "offline", "prompt": "consent",
    })  # fmt: skip
    separator = "&" if "?" in client.auth_url else "?"
    return f"{client.auth_url}{separator}{query}"


class YouTubeConnect:
    """The consent-flow and token routes; `off_reason` says why they cannot work, when so."""

    def __init__(
        self,
        *,
        client: GoogleClient | None,
        cipher: TokenCipher | None,
        store: UploadStore,
        http: httpx.AsyncClient,
        render: Callable[..., Response],
        off_reason: str | None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._cipher = cipher
        self._store = store
        self._http = http
        self._render = render
        self._off = off_reason if off_reason else (
            None if client and cipher else "YouTube uploads are not configured")  # fmt: skip
        self._monotonic = monotonic
        self._pending: dict[str, _Pending] = {}
        self._log = get_logger("youtube_auth")

    def routes(self) -> list[BaseRoute]:
        """The consent flow's two pages (HTML, so not in `/openapi.json`)."""
        return [
            Route("/admin/youtube/connect", self.connect, methods=["GET"]),
            Route(CALLBACK_PATH, self.callback, methods=["GET"]),
        ]

    def endpoints(self) -> list[Endpoint]:
        """`POST /admin/youtube/token`, declared (validated, in `/openapi.json`, fuzzed)."""
        return [
            Endpoint(
                "/admin/youtube/token", ("POST",), self.put_token,
                "Store a YouTube refresh token as a new generation",
                body=(Param("refresh_token", location="body", required=True,
                            max_length=MAX_TOKEN_LENGTH, pattern="[^ ]",
                            description="Google's refresh token for the upload scopes."),),
                responses={200: "`{\"stored\": true, \"generation\"}`",
                           409: "No ENCRYPTION_KEY (or YouTube not configured).",
                           503: "The database is unavailable."},
                tags=("youtube",),
            )
        ]  # fmt: skip

    def _page(self, status: int, title: str, message: str, ok: bool) -> Response:
        return self._render("youtube_connect.html", status, title=title, message=message, ok=ok,
                            nav="")  # fmt: skip

    async def connect(self, request: Request) -> Response:
        """Start the flow: remember a state and a verifier, send the browser to Google."""
        if self._off or self._client is None:
            return self._page(409, "YouTube", f"Cannot connect YouTube: {self._off}.", False)
        now = self._monotonic()
        self._pending = {k: p for k, p in self._pending.items() if p.expires > now}
        while len(self._pending) >= MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))
        state = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        redirect_uri = str(request.url.replace(path=CALLBACK_PATH, query="", fragment=""))
        self._pending[state] = _Pending(verifier, redirect_uri, now + STATE_TTL_S)
        self._log.info("youtube_consent_started")
        url = consent_url(self._client, redirect_uri=redirect_uri, state=state,
                          challenge=challenge)  # fmt: skip
        return RedirectResponse(url, 303)

    async def callback(self, request: Request) -> Response:
        """Google's redirect: check the state, exchange the code, store the token sealed."""
        query = request.query_params
        pending = self._pending.pop(query.get("state") or "", None)
        if pending is None or pending.expires <= self._monotonic():
            return self._page(400, "YouTube", "This sign-in link is unknown or has expired; "
                              "start again from the dashboard.", False)  # fmt: skip
        if query.get("error"):
            error = query["error"][:80]
            self._log.warning("youtube_consent_refused", error=error)
            return self._page(400, "YouTube", f"Google did not grant access ({error}).", False)
        code = query.get("code")
        if not code or self._client is None or self._cipher is None:
            return self._page(400, "YouTube", "Google's answer had no code.", False)
        token = await self._exchange(code, pending)
        if isinstance(token, _Failure):
            return self._page(502, "YouTube", token.message, False)
        try:
            generation = await store_refresh_token(self._store, self._cipher, token,
                                                   bootstrap=False)  # fmt: skip
        except DatabaseUnavailable:
            return self._page(503, "YouTube", "The database is unavailable; try again.", False)
        self._log.info("youtube_token_stored", source="console", generation=generation,
                       storage=self._cipher.scheme)  # fmt: skip
        return self._page(
            200,
            "YouTube connected",
            "YouTube is connected; waiting uploads resume on their own.",
            True,
        )

    async def _exchange(self, code: str, pending: _Pending) -> str | _Failure:
        assert self._client is not None  # noqa: S101 - checked by the caller
        form = {
            "code": code, "client_id": self._client.client_id,
            "client_secret": self._client.client_secret.get(),
            "redirect_uri": pending.redirect_uri, "grant_type": "authorization_code",
            "code_verifier": pending.verifier,
        }  # fmt: skip
        try:
            answer = await self._http.post(self._client.token_url, data=form, timeout=15.0)
        except httpx.HTTPError as exc:
            self._log.warning("youtube_code_exchange_failed", error=exc.__class__.__name__)
            return _Failure("Google's token endpoint did not answer; try again.")
        body: Any = None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code != 200 or not isinstance(body, dict):
            error = str(body.get("error", "")) if isinstance(body, dict) else ""
            self._log.warning("youtube_code_exchange_failed", status=answer.status_code,
                              error=error[:80])  # fmt: skip
            return _Failure(f"Google refused the code (HTTP {answer.status_code} {error[:80]}).")
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            return _Failure("Google gave no refresh token (is the OAuth client a Desktop app?).")
        return token

    async def put_token(self, request: Request) -> Response:
        """`POST /admin/youtube/token` {"refresh_token": "..."}: store it as a new generation."""
        if self._cipher is None:
            return JSONResponse({"error": f"cannot store a token: {self._off}"}, 409)
        token = str((request.state.body or {})["refresh_token"])
        try:
            generation = await store_refresh_token(self._store, self._cipher, token.strip(),
                                                   bootstrap=False)  # fmt: skip
        except DatabaseUnavailable:
            return JSONResponse({"error": "database unavailable"}, 503)
        self._log.info("youtube_token_stored", source="api", generation=generation,
                       storage=self._cipher.scheme)  # fmt: skip
        return JSONResponse({"stored": True, "generation": generation})


@dataclass(frozen=True)
class _Failure:
    message: str
