"""Twitch's app access token (client credentials), fetched once and cached until near expiry.

The token's status is also the `twitch_credentials` readiness check: a refused client secret is
reported there (and in the log) while the daemon keeps serving and retries at its next pass.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from vodarchiver.errors import HelixUnavailable, TwitchCredentialsError
from vodarchiver.logs import get_logger, redact
from vodarchiver.metrics import Metrics
from vodarchiver.models import CheckResult
from vodarchiver.values import Secret, masked_tail

# Renew this long before Twitch says the token expires (app tokens last about two months).
_RENEW_MARGIN_S = 600.0


@dataclass(frozen=True)
class _Cached:
    token: str
    renew_at: float  # monotonic


class AppToken:
    """Hands out a valid app access token; one fetch at a time however many callers ask."""

    name = "twitch_credentials"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        auth_url: str,
        client_id: str,
        client_secret: Secret,
        metrics: Metrics,
        timeout_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._url = f"{auth_url}/token"
        self._client_id = client_id
        self._secret = client_secret
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._monotonic = monotonic
        self._cached: _Cached | None = None
        self._lock = asyncio.Lock()
        self._status = CheckResult(False, "no token requested yet")
        self._log = get_logger("twitch_auth")

    async def get(self) -> str:
        """A token that is not about to expire; fetched when there is none."""
        async with self._lock:
            cached = self._cached
            if cached is not None and self._monotonic() < cached.renew_at:
                return cached.token
            return await self._fetch()

    def invalidate(self, token: str) -> None:
        """Forget `token` (Helix answered 401 with it); the next `get` fetches a new one."""
        if self._cached is not None and self._cached.token == token:
            self._cached = None

    async def check(self) -> CheckResult:
        """The readiness verdict: whether Twitch accepted our credentials last time we asked."""
        return self._status

    async def _fetch(self) -> str:
        form = {
            "client_id": self._client_id,
            "client_secret": self._secret.get(),
            "grant_type": "client_credentials",
        }
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._http.post(self._url, data=form)
        except (httpx.HTTPError, TimeoutError) as exc:
            self._metrics.helix_requests.labels("token", "error").inc()
            raise HelixUnavailable(f"token request failed: {exc.__class__.__name__}") from exc
        self._metrics.helix_requests.labels("token", str(response.status_code)).inc()
        if response.status_code in (400, 401, 403):
            reason = _message(response)
            self._status = CheckResult(False, f"Twitch refused the client credentials: {reason}")
            self._log.error(
                "twitch_credentials_refused", status=response.status_code, reason=reason
            )
            raise TwitchCredentialsError(f"Twitch refused TWITCH_CLIENT_ID/SECRET: {reason}")
        if response.status_code != 200:
            raise HelixUnavailable(f"token request answered {response.status_code}")
        try:
            body = response.json()
            token, lifetime = body["access_token"], float(body["expires_in"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise HelixUnavailable("token answer is not the documented JSON") from exc
        if not isinstance(token, str) or not token:
            raise HelixUnavailable("token answer has no access_token")
        renew_in = max(lifetime - _RENEW_MARGIN_S, lifetime / 2)
        self._cached = _Cached(token, self._monotonic() + renew_in)
        if not self._status.ok:
            self._log.info("twitch_app_token_acquired", expires_in_s=int(lifetime),
                           token_tail=masked_tail(token))  # fmt: skip
        self._status = CheckResult(True, "app token acquired")
        return token


def _message(response: httpx.Response) -> str:
    """Twitch's own reason (`invalid client secret`), never our request."""
    try:
        body = response.json()
    except json.JSONDecodeError:
        return f"HTTP {response.status_code}"
    message = body.get("message") if isinstance(body, dict) else None
    # Shown in /readyz, which the log scrubber does not see: scrub it here.
    return redact(str(message)[:200]) if message else f"HTTP {response.status_code}"
