"""Google OAuth for YouTube: the stored refresh token, access tokens, rotation and revocation.

The refresh token lives in `oauth_tokens` (provider `youtube`), sealed by TokenCipher. Access
tokens are refreshed a few minutes before they expire and shared through the same row, so
replicas do not each refresh. A refresh answer carrying a new refresh token replaces the old one
with a compare-and-swap on `generation`; a replica that lost the race reads the winner's token.
`invalid_grant` (revoked, expired, or a Testing-mode token older than 7 days) marks that
generation revoked: uploads pause in `waiting_for_auth` while everything else goes on, and a new
token stored by `vodarchiver auth youtube` (or a changed YT_REFRESH_TOKEN at the next start) is
a new generation, which `recover()` notices without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import httpx

from vodarchiver.db.uploads import TokenRow, UploadStore
from vodarchiver.errors import (
    DatabaseUnavailable,
    YouTubeAuthRevoked,
    YouTubeUnavailable,
)
from vodarchiver.logs import get_logger
from vodarchiver.metrics import Metrics
from vodarchiver.models import CheckResult
from vodarchiver.values import Secret
from vodarchiver.youtube.client import error_reason
from vodarchiver.youtube.crypto import TokenCipher, TokenSealError

PROVIDER = "youtube"
CHANNEL = ""  # one YouTube account for every Twitch channel
REFRESH_MARGIN = timedelta(minutes=5)
SCOPES = "https://www.googleapis.com/auth/youtube.upload https://www.googleapis.com/auth/youtube"


@dataclass
class _Payload:
    refresh_token: str
    access_token: str | None = None
    expires_at: datetime | None = None

    def to_bytes(self) -> bytes:
        return json.dumps({
            "refresh_token": self.refresh_token, "access_token": self.access_token,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }).encode()  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes) -> _Payload:
        raw = json.loads(data)
        expires = raw.get("expires_at")
        return cls(str(raw["refresh_token"]), raw.get("access_token"),
                   datetime.fromisoformat(expires) if expires else None)  # fmt: skip


def token_sha256(token: str) -> str:
    """What identifies a bootstrap token without storing it again."""
    return hashlib.sha256(token.encode()).hexdigest()


async def store_refresh_token(
    store: UploadStore, cipher: TokenCipher, refresh_token: str, *, bootstrap: bool
) -> int:
    """Store a refresh token from the operator as a new generation; returns it."""
    payload = _Payload(refresh_token).to_bytes()
    sealed = cipher.seal(payload, provider=PROVIDER, channel=CHANNEL)
    return await store.token_put(
        PROVIDER, CHANNEL, sealed=sealed, scheme=cipher.scheme,
        bootstrap_sha256=token_sha256(refresh_token) if bootstrap else None, scopes=SCOPES,
    )  # fmt: skip


class GoogleAuth:
    """Access tokens for the YouTube client, from the stored refresh token."""

    name = "youtube_auth"  # the /readyz check

    def __init__(
        self,
        http: httpx.AsyncClient,
        store: UploadStore,
        cipher: TokenCipher,
        metrics: Metrics,
        *,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        bootstrap_token: Secret | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = http
        self._store = store
        self._cipher = cipher
        self._metrics = metrics
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._bootstrap = bootstrap_token
        self._clock = clock
        self._lock = asyncio.Lock()
        self._access: str | None = None
        self._expires: datetime | None = None
        self._generation = 0
        self._revoked: tuple[int, str] | None = None  # (generation, why)
        self._log = get_logger("youtube_auth")

    # --- start-up -----------------------------------------------------------------------------

    async def bootstrap(self) -> None:
        """Store YT_REFRESH_TOKEN when it is new (not the one already bootstrapped)."""
        if self._bootstrap is None or not self._bootstrap.get():
            return
        token = self._bootstrap.get()
        row = await self._store.token_get(PROVIDER, CHANNEL)
        if row is not None and row.bootstrap_sha256 == token_sha256(token):
            return  # already stored (perhaps since rotated): the stored one is newer
        generation = await store_refresh_token(self._store, self._cipher, token, bootstrap=True)
        self._log.info("youtube_token_stored", source="YT_REFRESH_TOKEN", generation=generation)

    # --- state --------------------------------------------------------------------------------

    @property
    def revoked(self) -> str | None:
        """Why uploads wait for credentials, or None."""
        return self._revoked[1] if self._revoked else None

    @property
    def refused(self) -> bool:
        """Whether Google refused a stored token (not merely: nothing stored yet)."""
        return self._revoked is not None and self._revoked[0] > 0

    async def check(self) -> CheckResult:
        """`/readyz`: credentials are usable (or why not)."""
        if self._revoked is not None:
            return CheckResult(False, f"uploads wait for credentials: {self._revoked[1]}")
        if self._access is not None:
            return CheckResult(True, "access token valid")
        return CheckResult(True, "refresh token stored; access token on first use")

    def invalidate(self, token: str) -> None:
        """YouTube refused this access token (401): refresh before the next call."""
        if self._access == token:
            self._access, self._expires = None, None

    async def access_token(self) -> str:
        """A bearer token valid for at least a few minutes; refreshed when needed."""
        if self._fresh():
            assert self._access is not None  # noqa: S101 - _fresh checked it
            return self._access
        async with self._lock:
            if not self._fresh():
                await self._refresh()
            assert self._access is not None  # noqa: S101 - _refresh sets it or raises
            return self._access

    def _fresh(self) -> bool:
        return (self._access is not None and self._expires is not None
                and self._expires - self._clock() > REFRESH_MARGIN)  # fmt: skip

    async def recover(self) -> bool:
        """While revoked: True once a new token is stored and Google accepts it."""
        row = await self._load_row()
        if row is None or self._revoked is None:
            return self._revoked is None
        if row.generation == self._revoked[0] and row.revoked_at is not None:
            return False
        async with self._lock:
            self._revoked = None
            try:
                await self._refresh()
            except YouTubeAuthRevoked:
                return False
        self._log.info("youtube_auth_recovered", generation=self._generation)
        return True

    # --- refresh ------------------------------------------------------------------------------

    async def _load_row(self) -> TokenRow | None:
        try:
            return await self._store.token_get(PROVIDER, CHANNEL)
        except DatabaseUnavailable as exc:
            raise YouTubeUnavailable(f"token store: {exc}") from exc

    def _open(self, row: TokenRow) -> _Payload:
        if row.sealed is None:
            raise YouTubeAuthRevoked("no YouTube refresh token is stored")
        try:
            return _Payload.from_bytes(
                self._cipher.open(row.sealed, row.scheme, provider=PROVIDER, channel=CHANNEL)
            )
        except TokenSealError as exc:
            raise YouTubeAuthRevoked(str(exc)) from None
        except (ValueError, KeyError) as exc:
            raise YouTubeAuthRevoked("the stored YouTube token is unreadable") from exc

    async def _refresh(self, *, again: bool = False) -> None:
        row = await self._load_row()
        if row is None:
            self._pause(0, "no YouTube credentials: run `vodarchiver auth youtube` or set "
                           "YT_REFRESH_TOKEN")  # fmt: skip
        if row.revoked_at is not None:
            self._pause(row.generation, f"Google refused the refresh token ({row.revoked_reason})")
        payload = self._open(row)
        now = self._clock()
        if (payload.access_token and payload.expires_at
                and payload.expires_at - now > REFRESH_MARGIN):  # fmt: skip
            # Another replica (or our previous run) refreshed it recently: share it.
            self._access, self._expires, self._generation = (
                payload.access_token, payload.expires_at, row.generation)  # fmt: skip
            return
        answer = await self._post(payload.refresh_token)
        if answer.status_code == 200:
            await self._accept(answer, row, payload, now)
            return
        reason, message = error_reason(answer)
        self._metrics.youtube_token_refreshes.labels(
            outcome=reason or str(answer.status_code)
        ).inc()
        if reason in ("invalid_grant", "invalid_client", "unauthorized_client"):
            fresh = await self._load_row()
            if not again and fresh is not None and fresh.generation != row.generation:
                await self._refresh(again=True)  # rotated by another replica meanwhile
                return
            why = f"{reason}: {message}" if message else reason
            with contextlib.suppress(DatabaseUnavailable):  # paused here; recorded next time
                await self._store.token_revoke(PROVIDER, CHANNEL, row.generation, why[:300])
            self._pause(row.generation, f"Google refused the refresh token ({why[:300]})")
        raise YouTubeUnavailable(f"token refresh: HTTP {answer.status_code} {reason}".strip())

    async def _post(self, refresh_token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                "client_id": self._client_id,
                "client_secret": self._client_secret.get()}  # fmt: skip
        try:
            return await self._http.post(self._token_url, data=form)
        except httpx.HTTPError as exc:
            self._metrics.youtube_token_refreshes.labels(outcome="network").inc()
            raise YouTubeUnavailable(f"token refresh: {exc.__class__.__name__}") from exc

    async def _accept(
        self, answer: httpx.Response, row: TokenRow, payload: _Payload, now: datetime
    ) -> None:
        try:
            body = answer.json()
            access = str(body["access_token"])
            expires = now + timedelta(seconds=float(body.get("expires_in", 3600)))
        except (ValueError, KeyError, TypeError) as exc:
            raise YouTubeUnavailable("token refresh: the answer has no access token") from exc
        rotated = body.get("refresh_token")
        new = _Payload(str(rotated) if rotated else payload.refresh_token, access, expires)
        sealed = self._cipher.seal(new.to_bytes(), provider=PROVIDER, channel=CHANNEL)
        rotation = bool(rotated) and rotated != payload.refresh_token
        try:
            generation = await self._store.token_replace(
                PROVIDER, CHANNEL, rotate=rotation, sealed=sealed, scheme=self._cipher.scheme,
                generation=row.generation, expires_at=expires,
            )  # fmt: skip
        except DatabaseUnavailable as exc:
            if rotation:
                # Google has already invalidated the old token; losing the new one would lose
                # the account. Keep it in memory and retry storing it at the next refresh.
                self._log.error("youtube_token_rotation_not_stored", reason=str(exc))
            generation = None
        if generation is None and rotation:
            self._log.warning("youtube_token_rotation_conflict", generation=row.generation)
        self._access, self._expires = access, expires
        self._generation = generation or row.generation
        self._metrics.youtube_token_refreshes.labels(outcome="ok").inc()
        self._log.info("youtube_token_refreshed", rotated=rotation,
                       expires_in_s=round((expires - now).total_seconds()))  # fmt: skip

    def _pause(self, generation: int, why: str) -> NoReturn:
        if self._revoked is None or self._revoked[0] != generation:
            self._log.error("youtube_auth_revoked", reason=why, generation=generation)
            self._metrics.youtube_auth_revoked.inc()
        self._revoked = (generation, why)
        self._access, self._expires = None, None
        raise YouTubeAuthRevoked(why)
