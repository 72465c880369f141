"""Composition of the archive-completeness parts (issue 13): chat replay, coverage, extras.

`app.py` calls `build_archive` with a couple of lines; this module builds the real clients and
stages over the daemon's pool, HTTP client and metrics registry, and says in the log which parts
run and why the others do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from vodarchiver.archive_metrics import ArchiveMetrics
from vodarchiver.config import Settings
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.database import Database
from vodarchiver.db.extras_store import ExtrasStore
from vodarchiver.db.replay_store import ReplayJob, ReplayStore
from vodarchiver.db.uploads import UploadStore
from vodarchiver.logs import get_logger
from vodarchiver.media.downloader import Tools
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.chat_replay import ChatReplay
from vodarchiver.pipeline.coverage import summarize
from vodarchiver.pipeline.extras import ExtrasPolicy, ExtrasStage
from vodarchiver.pipeline.leased import Owner
from vodarchiver.pipeline.quota import QuotaPlan
from vodarchiver.supervisor import Supervisor
from vodarchiver.twitch.gql import GqlClient
from vodarchiver.twitch.thumbnail import ThumbnailFetcher
from vodarchiver.youtube.crypto import TokenCipher, parse_key
from vodarchiver.youtube.extras_client import THUMBNAIL_MAX_BYTES, ExtrasClient
from vodarchiver.youtube.oauth import GoogleAuth


@dataclass
class Archive:
    """The parts of issue 13 this daemon runs (None: off, said in the log)."""

    metrics: ArchiveMetrics
    replay_store: ReplayStore
    replay: ChatReplay | None
    extras_store: ExtrasStore
    extras: ExtrasStage | None = None

    async def vod_fields(self, vod_id: str) -> dict[str, Any]:
        """What `GET /vods/{id}` adds: `chat_coverage` (with the replay job) and `chapters`."""
        masks = await self.replay_store.minute_sources(vod_id)
        replay = await self.replay_store.status(vod_id)
        coverage: dict[str, Any] = summarize(masks).as_json() if masks else {}
        coverage["replay"] = _jsonable(replay) if replay else None
        chapters = await self.replay_store.chapters(vod_id)
        extras = [_jsonable(e) for e in await self.extras_store.of_vod(vod_id)]
        return {
            "extras": extras,
            "extras_pending": sum(1 for e in extras if e["state"] == "pending"),
            "chat_coverage": coverage,
            "chapters": [{"start_s": c.start_ms / 1000, "duration_s": c.duration_ms / 1000,
                          "title": c.title, "game_id": c.game_id} for c in chapters],
        }  # fmt: skip

    async def replay_done(self, job: ReplayJob) -> None:
        """After a replay: the channel's coverage gauges show this VOD's figures."""
        found = summarize(await self.replay_store.minute_sources(job.vod_id))
        self.metrics.coverage.labels(job.channel).set(found.ratio)
        self.metrics.gap_minutes.labels(job.channel).set(found.minutes - found.covered)

    def start(self, supervisor: Supervisor) -> None:
        """Start each part as an optional stage: restarted with backoff, never the daemon's end."""
        if self.replay is not None:
            supervisor.start("chat_replay", self.replay.run_forever, optional=True)
        if self.extras is not None:
            supervisor.start("extras", self.extras.run_forever, optional=True)


def build_archive(
    settings: Settings, db: Database, http: httpx.AsyncClient, metrics: Metrics,
    google_http: httpx.AsyncClient | None = None, *, owner: Owner,
) -> Archive:  # fmt: skip
    """Chat replay (CHAT_REPLAY) and the stores the API reads.

    Both jobs claim under the process's `Owner` (the one discovery, downloads and uploads use):
    `claimed_by` is a token of it for the stage (`chat_replay`, `extras`), and a restarted daemon
    takes over its killed predecessor's claims at once by the owner's prefix.
    """
    log = get_logger("chat_replay")
    archive_metrics = ArchiveMetrics(metrics.registry)
    store = ReplayStore(db.pool)
    replay = None
    if settings.chat_replay:
        gql = GqlClient(http, url=settings.twitch_gql_url, client_id=settings.twitch_gql_client_id,
                        timeout_s=settings.helix_timeout_s)  # fmt: skip
        replay = ChatReplay(
            gql, store, archive_metrics, owner_prefix=owner.prefix,
            owner=owner.token("chat_replay"),
            interval_s=settings.chat_replay_interval_s, retry_s=settings.chat_replay_retry_s,
        )  # fmt: skip
        log.info("chat_replay_enabled", gql_url=settings.twitch_gql_url,
                 interval_s=settings.chat_replay_interval_s)  # fmt: skip
    else:
        log.info("chat_replay_disabled", reason="CHAT_REPLAY is 0")
    archive = Archive(archive_metrics, store, replay, ExtrasStore(db.pool))
    archive.extras = build_extras(settings, db, http, google_http or http, archive_metrics,
                                  owner=owner)  # fmt: skip
    if replay is not None:
        replay.after_done = archive.replay_done
    return archive


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def build_extras(
    settings: Settings, db: Database, twitch_http: httpx.AsyncClient,
    google_http: httpx.AsyncClient, metrics: ArchiveMetrics, *, owner: Owner,
) -> ExtrasStage | None:  # fmt: skip
    """Thumbnails and captions of published parts, when uploads run and one of them is on."""
    log = get_logger("extras")
    policy = ExtrasPolicy(thumbnails=settings.youtube_thumbnails,
                          captions=settings.youtube_chat_captions,
                          captions_name=settings.youtube_captions_name,
                          captions_language=settings.youtube_captions_language,
                          ffmpeg=Tools().ffmpeg)  # fmt: skip
    reason = settings.upload_off_reason()
    key = settings.encryption_key
    if reason is None and key is None and not settings.allow_plaintext_tokens:
        reason = "ENCRYPTION_KEY is not set"
    if reason is None and not policy.kinds:
        reason = "YOUTUBE_THUMBNAILS and YOUTUBE_CHAT_CAPTIONS are 0"
    if reason is not None or settings.yt_client_secret is None:
        log.info("extras_disabled", reason=reason or "YT_CLIENT_SECRET is not set")
        return None
    uploads = UploadStore(db.pool)
    cipher = TokenCipher(parse_key(key.get()) if key is not None else None)
    # A second reader of the same stored token: access tokens are shared through its row.
    auth = GoogleAuth(google_http, uploads, cipher, Metrics("extras"),
                      token_url=settings.google_token_url, client_id=settings.yt_client_id,
                      client_secret=settings.yt_client_secret, bootstrap_token=None)  # fmt: skip
    client = ExtrasClient(google_http, auth, api_url=settings.youtube_api_url)
    quota = QuotaPlan(settings.youtube_quota_budgets, settings.youtube_quota_costs)
    log.info("extras_enabled", kinds=list(policy.kinds))
    thumbnails = ThumbnailFetcher(twitch_http, limit=THUMBNAIL_MAX_BYTES)
    return ExtrasStage(client, ExtrasStore(db.pool), uploads, quota, metrics,
                       chat=ChatStore(db.pool), thumbnails=thumbnails, owner_prefix=owner.prefix,
                       owner=owner.token("extras"), policy=policy)  # fmt: skip
