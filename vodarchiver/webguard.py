"""The HTTP edge's safety rules: one ASGI middleware, configured by one frozen `GuardPolicy`.

Every request passes `inspect()` (a pure decision over the request's method, path, headers and
client) before routing:
1. its `Host` must be an allowed name: a loopback name, an IP address, the HTTP_ADDR host or one
   of HTTP_ALLOWED_HOSTS. A DNS-rebinding page reaches us under its own domain name, which this
   refuses; an IP literal cannot be rebound, so any is accepted (probes and scrapers use them).
2. a mutating request (POST, PUT, PATCH, DELETE) whose `Origin` is another origin or whose
   `Sec-Fetch-Site` says cross-site or same-site is refused (403), and its body must be JSON or
   empty (415 otherwise; `POST /login` also takes an urlencoded form). An HTML form or a
   `text/plain` fetch from another page therefore never reaches a handler, and a JSON one from
   another origin needs a CORS preflight that we never grant.
3. under `/admin/`: with ADMIN_TOKEN set, `Authorization: Bearer <ADMIN_TOKEN>` (compared in
   constant time) or a valid session cookie (plus `X-CSRF-Token` on mutating requests), else 401;
   without ADMIN_TOKEN, only a loopback client that did not come through a proxy, else 403.
A refused request gets a JSON `{"error", "parameter"}` and never reaches a handler: no side effect.
The accepted actor (`token`, `session`, `loopback` or None) is put in `scope["state"]["actor"]`.

Sessions are stateless: the cookie `vodarchiver_session` is `v1.<expiry>.<nonce>.<mac>`, the MAC
an HMAC-SHA256 under a key derived from ADMIN_TOKEN, so changing the token ends every session.
The CSRF token is another HMAC of the session's nonce: bound to the session, never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from vodarchiver.config import Settings
from vodarchiver.values import Secret

SESSION_COOKIE = "vodarchiver_session"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_S = 12 * 3600
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names of "every interface", compared
# A request relayed by a proxy on this machine comes from loopback, yet its sender may not.
_PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass(frozen=True)
class GuardPolicy:
    """Everything the middleware decides with. Build it from Settings with `from_settings`."""

    allowed_hosts: frozenset[str] = LOOPBACK_NAMES
    admin_token: Secret | None = None
    session_ttl_s: int = SESSION_TTL_S
    admin_prefix: str = "/admin"
    form_paths: frozenset[str] = frozenset({"/login"})

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardPolicy:
        """ADMIN_TOKEN, HTTP_ALLOWED_HOSTS and the HTTP_ADDR host."""
        hosts = set(LOOPBACK_NAMES) | set(settings.http_allowed_hosts)
        if settings.http_addr.host not in _WILDCARDS:
            hosts.add(settings.http_addr.host.lower())
        token = settings.admin_token if settings.admin_token else None
        if token is not None and not token.get():
            token = None
        return cls(allowed_hosts=frozenset(hosts), admin_token=token)

    @property
    def token_required(self) -> bool:
        """Whether /admin/ needs the token (or a session) rather than a loopback client."""
        return self.admin_token is not None

    def is_admin(self, path: str) -> bool:
        """Whether `path` is under the admin prefix."""
        return path == self.admin_prefix or path.startswith(self.admin_prefix + "/")


@dataclass(frozen=True)
class Refusal:
    """A request refused before routing: status, message and the header or parameter at fault."""

    status: int
    error: str
    parameter: str
    headers: Mapping[str, str] | None = None

    def response(self) -> JSONResponse:
        """The JSON answer."""
        body = {"error": self.error, "parameter": self.parameter}
        return JSONResponse(body, self.status, headers=dict(self.headers or {}))


@dataclass(frozen=True)
class Facts:
    """What the decision looks at, taken from the ASGI scope."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names, the first value of each
    client: str | None

    @classmethod
    def from_scope(cls, scope: Scope) -> Facts:
        """The facts of an ASGI http scope."""
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
        client = scope.get("client")
        method = scope.get("method", "GET")
        return cls(method, scope["path"], headers, client[0] if client else None)


def inspect(policy: GuardPolicy, facts: Facts, now: float) -> Refusal | str | None:
    """The decision: a Refusal, or the accepted actor (`token`, `session`, `loopback`, None)."""
    refusal = _host_refusal(policy, facts.headers.get("host"))
    if refusal is not None:
        return refusal
    mutating = facts.method not in _SAFE_METHODS
    if mutating:
        refusal = _cross_site(facts.headers) or _content_refusal(policy, facts)
        if refusal is not None:
            return refusal
    actor, session = identify(policy, facts, now)
    if not policy.is_admin(facts.path):
        return actor
    if policy.token_required:
        if actor is None:
            return Refusal(401, "this route needs Authorization: Bearer <ADMIN_TOKEN> or a "
                           "session from POST /login", "Authorization",
                           {"WWW-Authenticate": 'Bearer realm="vodarchiver"'})  # fmt: skip
        if actor == "session" and mutating:
            expected = csrf_token(policy, session or "").encode()
            if not hmac.compare_digest(facts.headers.get(CSRF_HEADER, "").encode(), expected):
                return Refusal(403, "a session's mutating request needs its X-CSRF-Token "
                               "(from POST /login or GET /session)", "X-CSRF-Token")  # fmt: skip
        return actor
    if actor != "loopback":
        return Refusal(403, "ADMIN_TOKEN is not set: /admin/ answers loopback clients only",
                       "client")  # fmt: skip
    return actor


def identify(policy: GuardPolicy, facts: Facts, now: float) -> tuple[str | None, str | None]:
    """Who sent the request: (actor, session cookie value when the actor is `session`)."""
    if policy.admin_token is not None:
        scheme, _, given = facts.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token_matches(policy, given.strip()):
            return "token", None
        cookie = valid_session(policy, facts.headers.get("cookie", ""), now)
        if cookie is not None:
            return "session", cookie
        return None, None
    if is_loopback(facts.client) and not any(h in facts.headers for h in _PROXY_HEADERS):
        return "loopback", None
    return None, None


def token_matches(policy: GuardPolicy, given: str) -> bool:
    """Whether `given` is ADMIN_TOKEN, compared in constant time."""
    if policy.admin_token is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), policy.admin_token.get().encode())


def is_loopback(client: str | None) -> bool:
    """Whether a client address is on loopback (127.0.0.0/8, ::1, IPv4-mapped loopback)."""
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def host_name(header: str) -> str | None:
    """The name in a Host header without its port (`[::1]:8080` -> `::1`); None if malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        inside, sep, rest = value[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return inside
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _host_refusal(policy: GuardPolicy, header: str | None) -> Refusal | None:
    name = host_name(header) if header else None
    if name is not None and (name in policy.allowed_hosts or _is_ip(name)):
        return None
    return Refusal(400, "Host is not a name this server answers to (add it to HTTP_ALLOWED_HOSTS)",
                   "Host")  # fmt: skip


def _cross_site(headers: Mapping[str, str]) -> Refusal | None:
    fetch_site = headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site in ("cross-site", "same-site"):
        return Refusal(403, "a mutating request from another site is refused", "Sec-Fetch-Site")
    origin = headers.get("origin")
    if origin is None:
        return None  # not sent by a browser's cross-origin request: curl, the CLI, scripts
    if _origin_authority(origin) != _authority(headers.get("host", ""), origin):
        return Refusal(403, "a mutating request from another origin is refused", "Origin")
    return None


def _origin_authority(origin: str) -> str | None:
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
        return None  # includes "null", sent by sandboxed frames and opaque origins
    return _strip_default_port(rest, scheme)


def _authority(host: str, origin: str) -> str:
    scheme = origin.strip().lower().partition("://")[0]
    return _strip_default_port(host.strip().lower(), scheme)


def _strip_default_port(authority: str, scheme: str) -> str:
    default = ":443" if scheme == "https" else ":80"
    return authority.removesuffix(default)


def _content_refusal(policy: GuardPolicy, facts: Facts) -> Refusal | None:
    media = facts.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media[-5:] == "+json"):
        return None
    if media == "application/x-www-form-urlencoded" and facts.path in policy.form_paths:
        return None
    if not media and _empty_body(facts.headers):
        return None
    what = f"Content-Type {media[:60]!r}" if media else "a body without a Content-Type"
    return Refusal(415, f"{what} is not accepted: send JSON or an empty body", "Content-Type")


def _empty_body(headers: Mapping[str, str]) -> bool:
    return "transfer-encoding" not in headers and headers.get("content-length", "0").strip() == "0"


# --- sessions --------------------------------------------------------------------------------


def _key(policy: GuardPolicy, purpose: bytes) -> bytes:
    token = policy.admin_token.get().encode() if policy.admin_token else b""
    return hmac.new(token, b"vodarchiver " + purpose, hashlib.sha256).digest()


def _mac(policy: GuardPolicy, purpose: bytes, message: str) -> str:
    digest = hmac.new(_key(policy, purpose), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_session(policy: GuardPolicy, now: float) -> str:
    """A signed session cookie value valid for `session_ttl_s` from `now`."""
    body = f"v1.{int(now) + policy.session_ttl_s}.{secrets.token_urlsafe(18)}"
    return f"{body}.{_mac(policy, b'session', body)}"


def session_valid(policy: GuardPolicy, cookie: str, now: float) -> bool:
    """Whether the cookie was signed under the current ADMIN_TOKEN and has not expired."""
    if policy.admin_token is None:
        return False
    body, _, mac = cookie.rpartition(".")
    version, _, rest = body.partition(".")
    expiry, _, nonce = rest.partition(".")
    if version != "v1" or not expiry.isdigit() or not nonce or len(cookie) > 200:
        return False
    if not hmac.compare_digest(mac.encode(), _mac(policy, b"session", body).encode()):
        return False
    return now < int(expiry)


def csrf_token(policy: GuardPolicy, cookie: str) -> str:
    """The CSRF token of a session (derived from it, so nothing is stored)."""
    return _mac(policy, b"csrf", cookie)


def session_cookies(header: str) -> list[str]:
    """Every value of `vodarchiver_session` in a Cookie header (a cookie set by another path or
    a parent domain may shadow ours under the same name, so each one is tried)."""
    out = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == SESSION_COOKIE:
            out.append(value.strip().strip('"'))
    return out


def session_cookie(header: str) -> str | None:
    """The first value of `vodarchiver_session` in a Cookie header, if any."""
    found = session_cookies(header)
    return found[0] if found else None


def valid_session(policy: GuardPolicy, header: str, now: float) -> str | None:
    """The first session cookie in the header that is valid now, if any."""
    for cookie in session_cookies(header)[:8]:
        if session_valid(policy, cookie, now):
            return cookie
    return None


def set_cookie_header(value: str, *, max_age: int, secure: bool) -> str:
    """A Set-Cookie value: HttpOnly, SameSite=Strict, Path=/ (Secure when served over https)."""
    parts = [f"{SESSION_COOKIE}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly",
             "SameSite=Strict"]  # fmt: skip
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


class WebGuard:
    """ASGI middleware applying `inspect()` to every request before routing."""

    def __init__(
        self, app: ASGIApp, policy: GuardPolicy, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._app = app
        self.policy = policy
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        verdict = inspect(self.policy, Facts.from_scope(scope), self._clock())
        if isinstance(verdict, Refusal):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await verdict.response()(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["actor"] = verdict
        state["guard"] = self.policy
        await self._app(scope, receive, send)
