"""The Helix client: one instance shared by every channel.

Every call goes through `_call`, which:
- waits for Twitch's rate-limit bucket (shared RateLimit) instead of earning a 429, and on a 429
  waits until `Ratelimit-Reset` (or `Retry-After`);
- sends the app token; a 401 gets a fresh token and exactly one more try;
- retries 5xx answers and network errors with capped, jittered backoff;
- bounds each request by HELIX_TIMEOUT and each answer's size (a page of 100 videos is ~100 KB);
- turns anything that is not the documented JSON into HelixDataError, for the caller to skip.
Login-to-user lookups are cached for hours: ids never change, broadcaster types rarely.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

from vodarchiver.errors import (
    HelixDataError,
    HelixRequestError,
    HelixUnavailable,
)
from vodarchiver.logs import get_logger
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.backoff import backoff_s
from vodarchiver.twitch.auth import AppToken
from vodarchiver.twitch.models import (
    HelixStream,
    HelixUser,
    HelixVideo,
    data_items,
    next_cursor,
    parse_stream,
    parse_user,
    parse_video,
)
from vodarchiver.twitch.ratelimit import RateLimit, retry_after_s

MAX_BODY_BYTES = 4 * 2**20
MAX_IDS = 100  # Helix takes at most 100 ids or logins per request
PAGE_SIZE = 100
USER_CACHE_S = 6 * 3600.0


@dataclass(frozen=True)
class Rejected:
    """An item Helix sent that we could not use, and why."""

    item_id: str
    reason: str


@dataclass(frozen=True)
class VideosPage:
    """One page of a channel's archive listing."""

    videos: tuple[HelixVideo, ...]
    cursor: str | None
    rejected: tuple[Rejected, ...] = ()


@dataclass
class RetryPolicy:
    """How hard one call tries before giving up."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    max_rate_limit_wait_s: float = 120.0


@dataclass
class _UserCache:
    users: dict[str, tuple[HelixUser, float]] = field(default_factory=dict)


class HelixClient:
    """Typed access to the Helix endpoints discovery uses."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: AppToken,
        *,
        api_url: str,
        client_id: str,
        metrics: Metrics,
        timeout_s: float = 10.0,
        vod_types: tuple[str, ...] = ("archive",),
        retry: RetryPolicy | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._token = token
        self._api = api_url
        self._client_id = client_id
        self._vod_types = vod_types
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._wall = wall_clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._limit = RateLimit()
        self._limit_lock = asyncio.Lock()
        self._users = _UserCache()
        self._log = get_logger("helix")

    # --- endpoints ------------------------------------------------------------------------

    async def users(self, logins: Iterable[str]) -> dict[str, HelixUser]:
        """The users behind these logins (unknown logins are absent), cached for hours."""
        now = self._monotonic()
        wanted = list(dict.fromkeys(login.lower() for login in logins))
        found: dict[str, HelixUser] = {}
        for login in wanted:
            cached = self._users.users.get(login)
            if cached is not None and cached[1] > now:
                found[login] = cached[0]
        missing = [login for login in wanted if login not in found]
        for batch in _batches(missing, MAX_IDS):
            body = await self._call("users", "/users", [("login", login) for login in batch])
            for item in data_items(body):
                try:
                    user = parse_user(item)
                except HelixDataError as exc:
                    self._log.warning("helix_item_rejected", endpoint="users", reason=str(exc))
                    continue
                self._users.users[user.login] = (user, now + USER_CACHE_S)
                found[user.login] = user
        return found

    async def videos_page(self, user_id: str, after: str | None = None) -> VideosPage:
        """One page (100, newest first) of a channel's videos of the types TWITCH_VOD_TYPES names.

        Helix's `type` takes one value: several types are read as `type=all` and filtered here,
        so one listing (and one watermark) still covers the channel.
        """
        kind = self._vod_types[0] if len(self._vod_types) == 1 else "all"
        params = [("user_id", user_id), ("type", kind), ("first", str(PAGE_SIZE))]
        if after:
            params.append(("after", after))
        body = await self._call("videos", "/videos", params)
        videos, rejected = _parse_videos(data_items(body))
        if kind == "all":
            videos = [v for v in videos if v.type in self._vod_types]
        return VideosPage(tuple(videos), next_cursor(body), tuple(rejected))

    async def videos_by_id(
        self, ids: Sequence[str]
    ) -> tuple[dict[str, HelixVideo], list[Rejected]]:
        """The videos among `ids` that still exist, and the answer items we could not read.

        Helix answers 404 when none of the ids exists; that is an empty result, not an error.
        """
        found: dict[str, HelixVideo] = {}
        unreadable: list[Rejected] = []
        for batch in _batches(list(dict.fromkeys(ids)), MAX_IDS):
            try:
                body = await self._call("videos", "/videos", [("id", i) for i in batch])
            except HelixRequestError as exc:
                # Only Helix's own "not found" means none of these exist; a 404 page from a
                # proxy or a load balancer says nothing about the VODs.
                if exc.status == 404 and exc.from_helix:
                    continue
                raise
            videos, rejected = _parse_videos(data_items(body))
            unreadable += rejected
            found.update((v.id, v) for v in videos)
        return found, unreadable

    async def live_streams(self, user_ids: Iterable[str]) -> dict[str, HelixStream]:
        """The current live stream of each of these channels that is live, by user id."""
        found = await self._streams("user_id", dict.fromkeys(user_ids))
        return {stream.user_id: stream for stream in found}

    async def live_streams_by_login(self, logins: Iterable[str]) -> dict[str, HelixStream]:
        """`GET /streams?user_login=`: the live stream of each of these channels that is live."""
        found = await self._streams("user_login", dict.fromkeys(x.lower() for x in logins))
        return {stream.user_login.lower(): stream for stream in found}

    async def _streams(self, param: str, values: Iterable[str]) -> list[HelixStream]:
        """Every live stream among these channels, 100 per request."""
        found: list[HelixStream] = []
        for batch in _batches(list(values), MAX_IDS):
            params = [(param, value) for value in batch] + [("first", str(MAX_IDS))]
            body = await self._call("streams", "/streams", params)
            for item in data_items(body):
                try:
                    found.append(parse_stream(item))
                except HelixDataError as exc:
                    raise HelixDataError(f"a live stream entry is malformed: {exc}") from exc
        return found

    # --- the one way to call Helix --------------------------------------------------------

    async def _call(self, endpoint: str, path: str, params: list[tuple[str, str]]) -> object:
        refreshed = False
        failures = 0
        while True:
            await self._wait_for_bucket(endpoint)
            token = await self._token.get()
            try:
                # The whole call, not each read: a server trickling bytes cannot hold us longer.
                async with asyncio.timeout(self._timeout_s):
                    status, headers, body = await self._get(path, params, token)
            except (httpx.TimeoutException, httpx.TransportError, TimeoutError) as exc:
                self._metrics.helix_requests.labels(endpoint, "error").inc()
                failures += 1
                await self._backoff(endpoint, failures, f"{exc.__class__.__name__}")
                continue
            self._metrics.helix_requests.labels(endpoint, str(status)).inc()
            self._observe_limit(headers)
            if status == 200:
                return _json(body, endpoint)
            if status == 401 and not refreshed:
                refreshed = True
                self._token.invalidate(token)
                self._log.info("helix_token_refresh", endpoint=endpoint)
                continue
            if status == 429:
                failures += 1
                wait = retry_after_s(headers, self._wall(), default_s=5.0)
                await self._after_429(endpoint, failures, wait)
                continue
            if status >= 500:
                failures += 1
                await self._backoff(endpoint, failures, f"HTTP {status}")
                continue
            raise HelixRequestError(
                status,
                f"Helix {endpoint} answered {status}: {_reason(body)}",
                from_helix=_is_helix_error(body, status),
            )

    async def _get(
        self, path: str, params: list[tuple[str, str]], token: str
    ) -> tuple[int, httpx.Headers, bytes]:
        headers = {"Client-Id": self._client_id, "Authorization": f"Bearer {token}"}
        url = f"{self._api}{path}"
        query = httpx.QueryParams(tuple(params))
        async with self._http.stream("GET", url, params=query, headers=headers) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise HelixDataError(f"answer larger than {MAX_BODY_BYTES // 2**20} MiB")
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)

    async def _wait_for_bucket(self, endpoint: str) -> None:
        # One caller at a time decides and spends, so concurrent channels cannot overdraw.
        async with self._limit_lock:
            wait = self._limit.wait_s(self._wall())
            if wait > 0:
                wait = min(wait, self._retry.max_rate_limit_wait_s)
                self._log.info(
                    "helix_rate_limit_wait", endpoint=endpoint, wait_ms=round(wait * 1000)
                )
                self._count_wait(wait)
                await self._sleep(wait)
            self._limit.spend(self._wall())

    def _observe_limit(self, headers: httpx.Headers) -> None:
        self._limit.observe(headers, self._wall())
        if self._limit.remaining is not None:
            self._metrics.helix_ratelimit_remaining.set(self._limit.remaining)

    async def _after_429(self, endpoint: str, failures: int, wait_s: float) -> None:
        if failures >= self._retry.attempts:
            raise HelixUnavailable(f"Helix {endpoint}: still rate limited after {failures} tries")
        # At least a second, plus jitter: a reset "now" (clocks differ by a little) must not
        # turn into a burst of retries, nor may every channel retry at the same instant.
        wait_s = min(max(wait_s, 1.0), self._retry.max_rate_limit_wait_s)
        wait_s += self._rng.random() * 0.5
        self._log.warning("helix_rate_limited", endpoint=endpoint, wait_ms=round(wait_s * 1000))
        self._count_wait(wait_s)
        await self._sleep(wait_s)

    def _count_wait(self, wait_s: float) -> None:
        self._metrics.helix_ratelimit_waits.inc()
        self._metrics.helix_ratelimit_wait_seconds.inc(wait_s)

    async def _backoff(self, endpoint: str, failures: int, reason: str) -> None:
        if failures >= self._retry.attempts:
            raise HelixUnavailable(f"Helix {endpoint} failed {failures} times, last: {reason}")
        delay = backoff_s(
            failures, base_s=self._retry.base_s, cap_s=self._retry.cap_s, draw=self._rng.random()
        )
        self._log.warning(
            "helix_retry", endpoint=endpoint, reason=reason, retry_in_ms=round(delay * 1000)
        )
        await self._sleep(delay)


def _batches(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _json(body: bytes, endpoint: str) -> object:
    try:
        parsed: object = json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, deep nesting
        start = body[:60].decode(errors="replace")
        raise HelixDataError(f"Helix {endpoint} answered 200 without JSON: {start!r}") from None
    return parsed


def _is_helix_error(body: bytes, status: int) -> bool:
    """Whether a body is Helix's own error object for this status (`{"error", "status", ...}`)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, dict) and parsed.get("status") == status and "error" in parsed


def _reason(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return body[:100].decode(errors="replace")
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])[:200]
    return "no message"


def _parse_videos(items: list[object]) -> tuple[list[HelixVideo], list[Rejected]]:
    videos, rejected = [], []
    for item in items:
        try:
            videos.append(parse_video(item))
        except HelixDataError as exc:
            raw_id = item.get("id") if isinstance(item, dict) else None
            rejected.append(Rejected(str(raw_id)[:40] if raw_id is not None else "?", str(exc)))
    return videos, rejected
