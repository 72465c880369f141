"""The composition root: builds the real parts, starts the supervised tasks, drains on a signal.

Start-up order: bind HTTP_ADDR (fail fast), prepare DATA_DIR, open the database (embedded or
external; migrated), then serve. SIGTERM or SIGINT, at any point, stops taking work, stops the
tasks newest first within SHUTDOWN_TIMEOUT, closes the pool and stops the embedded server.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from vodarchiver import __version__
from vodarchiver.archive_app import build_archive
from vodarchiver.config import Settings
from vodarchiver.console.wiring import build_console
from vodarchiver.db.chat_lease_store import ChatLeaseStore
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.database import Database, wait_for_connection
from vodarchiver.db.embedded import EmbeddedPostgres
from vodarchiver.db.migrate import migrate
from vodarchiver.db.notify_store import NotifyStore
from vodarchiver.db.retention_store import RetentionStore
from vodarchiver.db.store import Store
from vodarchiver.db.uploads import UploadStore
from vodarchiver.db.wakeups import ClaimWakeups
from vodarchiver.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EmbeddedPostgresError,
    StartupError,
)
from vodarchiver.health import DatabaseCheck, DataDirCheck, DiskCheck, ReadinessCheck, StaticCheck
from vodarchiver.logs import get_logger
from vodarchiver.media.downloader import Downloader, Job, Tools
from vodarchiver.metrics import Metrics
from vodarchiver.models import CheckResult
from vodarchiver.notify.checker import Checker, CheckerPolicy
from vodarchiver.notify.sender import Sender, SenderPolicy, Targets
from vodarchiver.pipeline.chat import ChatCheck, ChatStage
from vodarchiver.pipeline.chat_leases import ChatLeases
from vodarchiver.pipeline.chat_writer import ChatWriter
from vodarchiver.pipeline.discovery import Discovery
from vodarchiver.pipeline.download import DownloadPolicy, DownloadStage
from vodarchiver.pipeline.leased import LeasedWorkers, Owner
from vodarchiver.pipeline.operator import Operator
from vodarchiver.pipeline.publish import Publisher, PublishPolicy
from vodarchiver.pipeline.quota import QuotaPlan
from vodarchiver.pipeline.retention import Sweeper
from vodarchiver.pipeline.retention_rules import RetentionPolicy, effective_keep_days
from vodarchiver.pipeline.upload import UploadPolicy, UploadStage
from vodarchiver.pipeline.upload_shared import CircuitCheck
from vodarchiver.supervisor import StagesCheck, Supervisor
from vodarchiver.twitch.auth import AppToken
from vodarchiver.twitch.chat import ChatRecorder, Credentials
from vodarchiver.twitch.helix import HelixClient
from vodarchiver.values import HostPort
from vodarchiver.web import Api, HttpServer, bind, bound_address, build_app
from vodarchiver.webguard import GuardPolicy
from vodarchiver.youtube.client import YouTubeClient
from vodarchiver.youtube.crypto import TokenCipher, parse_key
from vodarchiver.youtube.oauth import GoogleAuth, store_refresh_token

_TASKS_SHARE = 0.7


def prepare_data_dir(settings: Settings) -> None:
    """Create DATA_DIR; StartupError(DATA_DIR) when that is impossible."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            "DATA_DIR", f"cannot create {settings.data_dir}: {exc.strerror or exc}"
        ) from None


async def _watch_embedded(embedded: EmbeddedPostgres) -> None:
    code = await embedded.wait()
    raise EmbeddedPostgresError(
        f"the embedded PostgreSQL exited unexpectedly (status {code}); see {embedded.log_file}"
    )


def _install_signal_handlers(on_stop: Callable[[], object], earlier: Sequence[int]) -> None:
    """Route SIGTERM/SIGINT to `on_stop`; act at once on signals recorded before the loop ran."""
    loop = asyncio.get_running_loop()
    log = get_logger("daemon")
    seen: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        seen.append(sig)
        if len(seen) > 1:
            log.info("shutdown_already_in_progress", signal=sig.name)
            return
        log.info("shutdown_requested", signal=sig.name)
        on_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    for signum in earlier:
        on_signal(signal.Signals(signum))


def twitch_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one HTTP client every Twitch call shares (connection reuse, one timeout policy)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.helix_timeout_s),
        headers={"User-Agent": f"vodarchiver/{__version__}"},
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
    )


def build_downloads(
    settings: Settings,
    store: Store,
    metrics: Metrics,
    checks: list[ReadinessCheck],
    owner: Owner | None = None,
) -> DownloadStage | None:
    """The download stage, or None (said in the log and in /readyz) when it cannot run."""
    log = get_logger("vod_download")
    min_free = int(settings.disk_min_free_gb * 2**30)
    checks.append(DiskCheck(settings.data_dir, min_free, store))
    if settings.max_concurrent_downloads == 0:
        log.warning("downloads_disabled", reason="MAX_CONCURRENT_DOWNLOADS is 0")
        return None
    tools = Tools()
    missing = tools.missing()
    if missing:
        reason = f"{' and '.join(missing)} not found on PATH"
        log.warning("downloads_disabled", reason=reason)
        checks.append(
            StaticCheck("media_tools", CheckResult(False, f"downloads are off: {reason}"))
        )
        return None
    checks.append(StaticCheck("media_tools", CheckResult(True, "ffmpeg and ffprobe found")))
    downloader = Downloader(
        fragments=settings.download_concurrent_fragments,
        rate_limit=settings.download_rate_limit,
        tools=tools,
    )
    policy = DownloadPolicy(
        workers=settings.max_concurrent_downloads,
        max_attempts=settings.download_max_attempts,
        backoff_base_s=settings.download_backoff_base_s,
        backoff_max_s=settings.download_backoff_max_s,
        min_free_bytes=min_free,
        size_estimate_mbps=settings.download_size_estimate_mbps,
        release_after_s=settings.disk_full_release_after_s,
        poll_s=settings.claim_poll_interval_s,
    )
    return DownloadStage(store, downloader, metrics, data_dir=settings.data_dir, policy=policy,
                         owner=owner)  # fmt: skip


def google_http_client() -> httpx.AsyncClient:
    """The HTTP client of Google's token server and YouTube: long writes for upload chunks."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=15.0, read=120.0, write=120.0, pool=30.0),
        headers={"User-Agent": f"vodarchiver/{__version__}"},
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
    )


def build_uploads(
    settings: Settings,
    http: httpx.AsyncClient,
    store: UploadStore,
    metrics: Metrics,
    checks: list[ReadinessCheck],
    *,
    owner: Owner | None = None,
    after_upload: Callable[[int], Awaitable[None]] | None = None,
) -> UploadStage | None:
    """The upload stage, or None (said in the log and in /readyz) when settings turn it off."""
    log = get_logger("vod_upload")
    reason = settings.upload_off_reason()
    if reason is not None or settings.yt_client_secret is None:
        reason = reason or "YT_CLIENT_SECRET is not set"
        log.warning("uploads_disabled", reason=reason, downloaded_vods="wait in `downloaded`")
        checks.append(
            StaticCheck("youtube_upload", CheckResult(True, f"uploads are off: {reason}"))
        )
        return None
    key = settings.encryption_key
    if key is None and not settings.allow_plaintext_tokens:
        reason = ("ENCRYPTION_KEY is not set: tokens are never stored unencrypted unless "
                  "ALLOW_PLAINTEXT_TOKENS=1")  # fmt: skip
        log.error("uploads_disabled", reason=reason, downloaded_vods="wait in `downloaded`")
        checks.append(
            StaticCheck("youtube_upload", CheckResult(False, f"uploads are off: {reason}"))
        )
        return None
    cipher = TokenCipher(parse_key(key.get()) if key is not None else None)
    auth = GoogleAuth(
        http, store, cipher, metrics, token_url=settings.google_token_url,
        client_id=settings.yt_client_id, client_secret=settings.yt_client_secret,
        bootstrap_token=settings.yt_refresh_token,
    )  # fmt: skip
    client = YouTubeClient(http, auth, api_url=settings.youtube_api_url)
    quota = QuotaPlan(settings.youtube_quota_budgets, settings.youtube_quota_costs)
    clock = _utcnow
    publisher = Publisher(
        store, client, quota, metrics,
        PublishPolicy(
            chunk_size=settings.upload_chunk_size, chunk_retries=8,
            retry_base_s=settings.upload_retry_base_s, retry_cap_s=60.0, marker_pages=20,
            category_id=str(settings.youtube_category_id), privacy=settings.youtube_privacy,
        ),
        clock=clock,
    )  # fmt: skip
    tools = Tools()
    policy = UploadPolicy(
        workers=settings.max_concurrent_uploads, max_attempts=settings.upload_max_attempts,
        backoff_base_s=settings.upload_backoff_base_s,
        backoff_max_s=settings.upload_backoff_max_s,
        circuit_threshold=settings.circuit_failure_threshold,
        circuit_cooldown=timedelta(seconds=settings.circuit_open_cooldown_s),
        upload_limit_cooldown=timedelta(seconds=settings.upload_limit_cooldown_s),
        max_part_duration_s=settings.youtube_max_part_duration_s,
        max_part_bytes=settings.youtube_max_part_size,
        split_chapter_distance_s=settings.youtube_split_chapter_distance_s,
        poll_s=settings.claim_poll_interval_s,
        title_template=settings.youtube_title_template,
        description_template=settings.youtube_description_template,
        tags=settings.youtube_tags, playlists=settings.youtube_playlists,
        ffmpeg=tools.ffmpeg, ffprobe=tools.ffprobe, after_upload=after_upload,
    )  # fmt: skip
    checks.append(auth)
    checks.append(CircuitCheck(store))
    log.info("uploads_enabled", workers=policy.workers, chunk_size=settings.upload_chunk_size,
             privacy=settings.youtube_privacy, token_storage=cipher.scheme)  # fmt: skip
    return UploadStage(store, publisher, auth, quota, metrics, data_dir=settings.data_dir,
                       policy=policy, clock=clock, owner=owner)  # fmt: skip


def build_operator(
    settings: Settings,
    store: UploadStore,
    helix: HelixClient | None,
    downloads: DownloadStage | None,
    uploads: UploadStage | None,
) -> Operator:
    """The operator's actions over the running stages (stops, wake-ups) and Helix."""
    workers: list[LeasedWorkers[Any]] = [s.workers for s in (downloads, uploads) if s is not None]

    def remove_files(channel: str, vod_id: str) -> None:
        Downloader.remove_files(Job(vod_id, "", None, settings.data_dir / channel / vod_id))

    async def on_twitch(vod_id: str) -> bool | None:
        if helix is None:
            return None
        found, _ = await helix.videos_by_id([vod_id])
        return vod_id in found

    return Operator(store, workers=workers, remove_files=remove_files, on_twitch=on_twitch,
                    uploads_status=uploads.status if uploads else None)  # fmt: skip


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_helix(
    settings: Settings, http: httpx.AsyncClient, metrics: Metrics, checks: list[ReadinessCheck]
) -> HelixClient | None:
    """The one Helix client (discovery and chat share its token and rate-limit bucket)."""
    reason = settings.discovery_off_reason()
    if reason is not None or settings.twitch_client_secret is None:
        reason = reason or "TWITCH_CLIENT_SECRET is not set"
        get_logger("discovery").warning("discovery_disabled", reason=reason)
        checks.append(
            StaticCheck("twitch_credentials", CheckResult(False, f"discovery is off: {reason}"))
        )
        return None
    token = AppToken(
        http,
        auth_url=settings.twitch_auth_url,
        client_id=settings.twitch_client_id,
        client_secret=settings.twitch_client_secret,
        metrics=metrics,
        timeout_s=settings.helix_timeout_s,
    )
    checks.append(token)
    return HelixClient(
        http, token, api_url=settings.twitch_api_url, client_id=settings.twitch_client_id,
        metrics=metrics, timeout_s=settings.helix_timeout_s, vod_types=settings.twitch_vod_types,
    )  # fmt: skip


def build_discovery(
    settings: Settings,
    helix: HelixClient | None,
    store: Store,
    metrics: Metrics,
    *,
    on_new_work: Callable[[], None] | None = None,
    owner: Owner | None = None,
) -> Discovery | None:
    """The discovery stage, or None when there is no Helix client (said by build_helix)."""
    if helix is None:
        return None
    get_logger("discovery").info(
        "discovery_enabled",
        channels=list(settings.channels),
        interval_s=settings.discovery_interval_s,
    )
    return Discovery(
        helix, store, metrics, channels=settings.channels,
        retention_overrides=settings.twitch_retention_days,
        interval_s=settings.discovery_interval_s, on_new_work=on_new_work, owner=owner,
    )  # fmt: skip


def build_chat(
    settings: Settings,
    helix: HelixClient | None,
    db: Database,
    metrics: Metrics,
    checks: list[ReadinessCheck],
    *,
    owner: Owner,
) -> ChatStage | None:
    """The chat stage, or None (said in the log; in /readyz when CHAT_AUTO_START cannot work)."""
    log = get_logger("chat")
    reason = settings.chat_off_reason()
    if reason is not None:
        log.info("chat_disabled", reason=reason)
        if settings.chat_auto_start:
            checks.append(StaticCheck("chat", CheckResult(False, f"chat is off: {reason}")))
        return None
    chat_store = ChatStore(db.pool)
    writer = ChatWriter(chat_store, metrics, flush_interval_s=settings.chat_flush_interval_s)

    async def credentials() -> Credentials:
        # Asked at every connection, so a rotating token source can be plugged in here (the
        # upload issue's sealed `oauth_tokens` store is the natural one; not wired yet).
        token = settings.twitch_oauth_token
        if settings.twitch_bot_username and token is not None and token.get():
            return Credentials(settings.twitch_bot_username, token)
        return Credentials("", None)

    def recorder(channel: str) -> ChatRecorder:
        return ChatRecorder(channel, endpoint=settings.twitch_irc_url, credentials=credentials,
                            sink=writer.add, metrics=metrics)  # fmt: skip

    channels = settings.channels if settings.chat_auto_start else settings.twitch_channel
    leases = ChatLeases(ChatLeaseStore(db.pool), owner, lease_s=settings.chat_lease_s,
                        slots=settings.chat_redundancy)  # fmt: skip
    stage = ChatStage(
        channels=channels, auto_start=settings.chat_auto_start, helix=helix, store=chat_store,
        writer=writer, metrics=metrics, recorder=recorder, leases=leases,
        poll_interval_s=settings.chat_poll_interval_s, grace_s=settings.chat_offline_grace_s,
        window_s=settings.vod_reconcile_window_s,
    )  # fmt: skip
    checks.append(ChatCheck(stage))
    log.info("chat_enabled", channels=list(channels), auto_start=settings.chat_auto_start,
             endpoint=settings.twitch_irc_url.url, redundancy=settings.chat_redundancy,
             lease_s=settings.chat_lease_s, owner=leases.owner)  # fmt: skip
    return stage


def build_retention(settings: Settings, db: Database) -> Sweeper:
    """The retention sweeper (RETENTION_*, DELETE_AFTER_UPLOAD as the older form)."""
    policy = retention_policy(settings)
    get_logger("retention").info(
        "retention_policy", keep_days=policy.keep_days, max_gb=settings.retention_max_gb,
        failed_days=policy.failed_days, interval_s=settings.retention_sweep_interval_s,
    )  # fmt: skip
    return Sweeper(RetentionStore(db.pool), policy, data_dir=settings.data_dir,
                   interval_s=settings.retention_sweep_interval_s)  # fmt: skip


def retention_policy(settings: Settings) -> RetentionPolicy:
    """The retention rules the settings ask for."""
    max_gb = settings.retention_max_gb
    return RetentionPolicy(
        keep_days=effective_keep_days(settings.retention_keep_days, settings.delete_after_upload),
        max_bytes=int(max_gb * 2**30) if max_gb is not None else None,
        failed_days=settings.retention_failed_days,
    )


def console_base(settings: Settings, bound: HostPort) -> str:
    """CONSOLE_URL, or http:// and the bound address (the host name when bound to all)."""
    if settings.console_url:
        return settings.console_url
    host = bound.host if bound.host not in ("0.0.0.0", "::", "") else socket.gethostname()  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{bound.port}"


def build_notifications(
    settings: Settings,
    db: Database,
    metrics: Metrics,
    checks: Sequence[ReadinessCheck],
    bound: HostPort,
) -> tuple[Sender, Checker]:
    """The outbox's sender and the periodic checker (both run even without NOTIFY_URLS: events
    are then recorded as skipped, and the token age is still measured)."""
    store = NotifyStore(db.pool)
    raw = settings.notify_urls.get() if settings.notify_urls is not None else ""
    targets = Targets.from_setting(raw) if raw.strip() else None
    policy = SenderPolicy(events=settings.notify_events,
                          console_url=console_base(settings, bound),
                          retry_base_s=settings.notify_retry_base_s)  # fmt: skip
    sender = Sender(store, targets, policy, data_dir=settings.data_dir)
    checker = Checker(
        store, metrics,
        CheckerPolicy(
            interval_s=settings.notify_check_interval_s,
            at_risk_window=timedelta(seconds=settings.at_risk_window_s),
            token_lifetime=settings.youtube_token_lifetime,
            min_free_bytes=int(settings.disk_min_free_gb * 2**30),
            chat_window_s=settings.vod_reconcile_window_s,
        ),
        data_dir=settings.data_dir, probes=checks,
    )  # fmt: skip
    get_logger("notify").info(
        "notifications_enabled" if targets else "notifications_disabled",
        targets=[t.label for t in targets.targets] if targets else [],
        events=sorted(e.value for e in settings.notify_events),
    )  # fmt: skip
    return sender, checker


def build_wakeups(
    db: Database, downloads: DownloadStage | None, uploads: UploadStage | None
) -> ClaimWakeups | None:
    """The one LISTEN connection that wakes the stages' workers; None when no stage runs."""
    stages = {s.name: s for s in (downloads, uploads) if s is not None}
    if not stages:
        return None
    wakeups = ClaimWakeups(db.conninfo, {n: s.workers.wake for n, s in stages.items()})
    for stage in stages.values():
        stage.workers.heard = wakeups.listening
    return wakeups


def start_parts(
    settings: Settings,
    db: Database,
    sock: socket.socket,
    http_client: httpx.AsyncClient,
    started_at: datetime,
    *,
    google_client: httpx.AsyncClient | None = None,
) -> Supervisor:
    """Build every part over the open database and start each as a supervised task."""
    metrics = Metrics(__version__)
    metrics.watch_disk(settings.data_dir)
    checks: list[ReadinessCheck] = [DatabaseCheck(db.probe), DataDirCheck(settings.data_dir)]
    supervisor = Supervisor()
    checks.append(StagesCheck(supervisor))
    sweeper = build_retention(settings, db)
    owner = Owner(settings.data_dir)  # one identity for every claim and lease of this process
    downloads = build_downloads(settings, db.store, metrics, checks, owner)
    helix = build_helix(settings, http_client, metrics, checks)
    discovery = build_discovery(
        settings, helix, db.store, metrics, on_new_work=downloads.wake if downloads else None,
        owner=owner,
    )  # fmt: skip
    uploads = build_uploads(settings, google_client or http_client, db.store, metrics, checks,
                            owner=owner, after_upload=sweeper.after_upload)  # fmt: skip
    operator = build_operator(settings, db.store, helix, downloads, uploads)
    chat = build_chat(settings, helix, db, metrics, checks, owner=owner)
    sender, checker = build_notifications(settings, db, metrics, checks, bound_address(sock))
    archive = build_archive(settings, db, http_client, metrics, google_client, owner=owner)
    api = Api(
        store=db.store, probe=db.probe, metrics=metrics, checks=checks, version=__version__,
        started_at=started_at, operator=operator,
        uploads=uploads.status if uploads else None,
        chat=ChatStore(db.pool), chat_status=chat.status if chat else None,
        notifications=sender.status, archive=archive.vod_fields,
    )  # fmt: skip
    console_endpoints, console_routes = build_console(
        settings, api, db.pool, chat.status if chat else None, google_client or http_client
    )
    app = build_app(api, metrics, GuardPolicy.from_settings(settings), extra=console_endpoints,
                    extra_routes=console_routes)  # fmt: skip
    server = HttpServer(app, sock, header_timeout_s=settings.http_header_timeout_s,
                        max_connections=settings.http_max_connections)  # fmt: skip
    # Core tasks stop the daemon when they end; optional stages are restarted with backoff.
    supervisor.start("http", server.serve(), stop=server.stop)
    if db.embedded is not None:
        supervisor.start("embedded_pg_watch", _watch_embedded(db.embedded))
    if discovery is not None:
        supervisor.start("discovery", discovery.run_forever, optional=True)
    if downloads is not None:
        supervisor.start("downloads", downloads.run_forever, optional=True)
    if uploads is not None:
        supervisor.start("uploads", uploads.run_forever, optional=True)
    wakeups = build_wakeups(db, downloads, uploads)
    if wakeups is not None:
        supervisor.start("wakeups", wakeups.run_forever, optional=True)
    if chat is not None:
        supervisor.start("chat", chat.run_forever, optional=True)
    archive.start(supervisor)
    supervisor.start("notifications", sender.run_forever, optional=True)
    supervisor.start("notify_checks", checker.run_forever, optional=True)
    supervisor.start("retention", sweeper.run_forever, optional=True)
    return supervisor


async def run_daemon(settings: Settings, early_signals: Sequence[int] = ()) -> int:
    """Run until a signal (exit 0) or until a supervised task dies (exit 1)."""
    log = get_logger("daemon")
    begin = time.perf_counter()
    started_at = datetime.now(UTC)
    stop = asyncio.Event()
    _install_signal_handlers(stop.set, early_signals)

    sock = bind(settings.http_addr)
    try:
        prepare_data_dir(settings)
        opening = asyncio.create_task(Database.open(settings), name="database-open")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not opening.done():
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            log.info("daemon_stopped", exit_code=EXIT_OK, during="startup")
            return EXIT_OK
        db = opening.result()
    except BaseException:
        sock.close()
        raise

    exited = None
    drain_began = 0.0
    http_client = twitch_http_client(settings)
    google_client = google_http_client()
    try:
        supervisor = start_parts(
            settings, db, sock, http_client, started_at, google_client=google_client
        )
        log.info(
            "daemon_started",
            version=__version__,
            http=str(bound_address(sock)),
            database=db.target,
            startup_ms=round((time.perf_counter() - begin) * 1000, 1),
        )
        exited = await supervisor.wait(stop)
        log.info("shutdown_started", reason=exited.describe() if exited else "signal")
        drain_began = time.perf_counter()
        # SHUTDOWN_TIMEOUT bounds the whole stop: most of it for the tasks to checkpoint, the
        # rest for the pool and the embedded server (whose stop escalates to SIGQUIT).
        clean = await supervisor.shutdown(settings.shutdown_timeout_s * _TASKS_SHARE)
        log.info(
            "tasks_stopped",
            clean=clean,
            drain_ms=round((time.perf_counter() - drain_began) * 1000, 1),
        )
    finally:
        await http_client.aclose()
        await google_client.aclose()
        spent = time.perf_counter() - drain_began if drain_began else 0.0
        await db.aclose(timeout_s=max(1.0, settings.shutdown_timeout_s - spent))
        sock.close()
    code = EXIT_FAILED if exited else EXIT_OK
    log.info("daemon_stopped", exit_code=code)
    return code


async def migrate_only(settings: Settings, early_signals: Sequence[int] = ()) -> int:
    """`vodarchiver migrate`: bring the schema up to date and exit (130 if a signal stops it)."""
    log = get_logger("migrate")
    embedded: EmbeddedPostgres | None = None
    this = asyncio.current_task()
    assert this is not None  # noqa: S101 - always inside asyncio.run
    try:
        # A signal cancels the run: the migration in progress rolls back with its transaction.
        _install_signal_handlers(this.cancel, early_signals)
        if settings.database_url is None:
            prepare_data_dir(settings)
            embedded = EmbeddedPostgres(settings.data_dir, port=settings.embedded_pg_port)
            conninfo = await embedded.start()
        else:
            conninfo = settings.database_url.conninfo.get()
            await wait_for_connection(
                conninfo, settings.database_url.redacted, settings.database_connect_timeout_s
            )
        applied = await migrate(conninfo, lock_timeout_s=settings.migration_lock_timeout_s)
    except asyncio.CancelledError:
        log.warning("migrate_interrupted")
        return EXIT_INTERRUPTED
    finally:
        if embedded is not None:
            await embedded.stop()
    log.info("migrate_done", applied=[f"{m.version:04d}_{m.name}" for m in applied])
    return EXIT_OK


async def store_youtube_token(settings: Settings, refresh_token: str) -> int:
    """`vodarchiver auth youtube`: store a refresh token (a new generation); exit status."""
    log = get_logger("youtube_auth")
    key = settings.encryption_key
    if key is None and not settings.allow_plaintext_tokens:
        raise StartupError(
            "ENCRYPTION_KEY",
            "refusing to store the token unencrypted: set ENCRYPTION_KEY (openssl rand -base64 "
            "32), or ALLOW_PLAINTEXT_TOKENS=1 to store it in plaintext on purpose",
        )
    cipher = TokenCipher(parse_key(key.get()) if key is not None else None)
    prepare_data_dir(settings)
    db = await Database.open(settings)
    try:
        generation = await store_refresh_token(db.store, cipher, refresh_token, bootstrap=False)
    finally:
        await db.aclose(timeout_s=5.0)
    log.info("youtube_token_stored", source="vodarchiver auth youtube", generation=generation,
             storage=cipher.scheme)  # fmt: skip
    return EXIT_OK
