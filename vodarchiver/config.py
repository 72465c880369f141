"""Settings: read once from the environment and an optional `.env` file into a frozen record.

This is the only module that reads the environment. Every variable is declared once in
`VARIABLES` (name, group, default, meaning, parser); CONFIG.md documents the same list and a test
keeps the two in step. `load_settings` reports every bad variable at once in one ConfigError.
Secret values are wrapped in `Secret`, whose repr is redacted, and are listed by
`Settings.secret_values()` so the log pipeline can scrub them from anything it writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from vodarchiver.errors import ConfigError
from vodarchiver.notify.events import (
    DEFAULT_EVENTS,
    Event,
    parse_console_url,
    parse_events,
    parse_notify_urls,
    parse_optional_duration,
)
from vodarchiver.pipeline.retention_rules import parse_days, parse_max_gb
from vodarchiver.values import (
    DEFAULT_DESCRIPTION,
    FOREIGN_PREFIXES,
    REDACTED,
    DatabaseUrl,
    HostPort,
    IrcEndpoint,
    Secret,
    admin_token,
    chat_lease,
    choice,
    chunk_size,
    encryption_key,
    flag,
    flush_interval,
    host_names,
    http_url,
    int_in,
    log_level,
    login,
    nonempty,
    oauth_token,
    parse_database_url,
    parse_duration,
    parse_host_port,
    parse_irc_url,
    parse_logins,
    parse_size,
    path,
    playlists,
    positive_duration,
    positive_float,
    quota_budgets,
    quota_costs,
    rate,
    retention_overrides,
    secret,
    tags,
    template,
    vod_types,
    with_password,
)

# --- the declaration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One environment variable: its group in CONFIG.md, its default as text, what it means."""

    name: str
    attr: str
    group: str
    default: str | None
    help: str
    parse: Callable[[str], Any]
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    # Twitch
    Variable(
        "TWITCH_CHANNELS", "twitch_channels", "Twitch", "",
        "Channels to archive: comma-separated Twitch logins.", parse_logins,
    ),
    Variable(
        "TWITCH_CHANNEL", "twitch_channel", "Twitch", "",
        "The runbook's single-channel form; added to `TWITCH_CHANNELS`.", parse_logins,
    ),
    Variable(
        "TWITCH_CLIENT_ID", "twitch_client_id", "Twitch", "",
        "Client id of your Twitch application (dev.twitch.tv/console); with the secret, it "
        "obtains the app token discovery uses. Without both, discovery is off.", nonempty,
    ),
    Variable(
        "TWITCH_CLIENT_SECRET", "twitch_client_secret", "Twitch", None,
        "Client secret of that application.", secret, secret=True,
    ),
    Variable(
        "TWITCH_API_URL", "twitch_api_url", "Twitch", "https://api.twitch.tv/helix",
        "Base URL of the Helix API.", http_url,
    ),
    Variable(
        "TWITCH_AUTH_URL", "twitch_auth_url", "Twitch", "https://id.twitch.tv/oauth2",
        "Base URL of Twitch's OAuth server (its `/token` gives the app token).", http_url,
    ),
    Variable(
        "TWITCH_RETENTION_DAYS", "twitch_retention_days", "Twitch", "",
        "Per-channel override of how long Twitch keeps VODs, as `login=days` pairs "
        "(`alice=60,bob=14`). Otherwise: 60 days for partners, 14 for affiliates, 7 for others.",
        retention_overrides,
    ),
    Variable(
        "HELIX_TIMEOUT", "helix_timeout_s", "Twitch", "10s",
        "Timeout of each Helix or token request.", positive_duration,
    ),
    Variable(
        "TWITCH_VOD_TYPES", "twitch_vod_types", "Twitch", "archive",
        "Which videos to archive: comma-separated `archive` (past broadcasts), `highlight`, "
        "`upload`.", vod_types,
    ),
    Variable(
        "TWITCH_GQL_URL", "twitch_gql_url", "Twitch", "https://gql.twitch.tv",
        "Base URL of Twitch's GQL endpoint (`/gql` is added): chat replay and chapters.", http_url,
    ),
    Variable(
        "TWITCH_GQL_CLIENT_ID", "twitch_gql_client_id", "Twitch", "kd1unb4b3q4t58fwlpcbzcbnm76a8fp",
        "Client id sent to GQL (not your application's: GQL takes the ids of Twitch's own "
        "clients; `kimne78kx3ncx6brgo4mv6wki5h1ko` is the web player's).", nonempty,
    ),
    # Chat
    Variable(
        "CHAT_AUTO_START", "chat_auto_start", "Chat", "0",
        "`1`: record the chat of every configured channel while it is live (Helix `/streams`, "
        "needs the client id and secret). `0`: the runbook's form, the chat of `TWITCH_CHANNEL` "
        "is recorded all the time (no `TWITCH_CHANNEL`: no chat).", flag,
    ),
    Variable(
        "CHAT_POLL_INTERVAL", "chat_poll_interval_s", "Chat", "30s",
        "How often Helix is asked which channels are live, and placeholders are reconciled.",
        positive_duration,
    ),
    Variable(
        "CHAT_OFFLINE_GRACE", "chat_offline_grace_s", "Chat", "2m",
        "How long a channel must look offline (and in two answers in a row) before its "
        "recorder stops: one flapping answer never stops it.", parse_duration,
    ),
    Variable(
        "CHAT_FLUSH_INTERVAL", "chat_flush_interval_s", "Chat", "500ms",
        "Longest time a received message waits before it is written (at most 1s: what a "
        "SIGKILL may lose).", flush_interval,
    ),
    Variable(
        "CHAT_REDUNDANCY", "chat_redundancy", "Chat", "1",
        "How many replicas on one database record each channel at once. `1`: one, another "
        "takes over within about `CHAT_LEASE` when it dies; `2`: two connections per channel "
        "and no gap when one dies (each message is still stored once).", int_in(1, 8),
    ),
    Variable(
        "CHAT_LEASE", "chat_lease_s", "Chat", "6s",
        "How long a replica's hold on a channel's chat lasts without renewal (renewed every "
        "third of it): the longest a dead replica's channel goes unrecorded, and how long a "
        "replica that lost the database goes on recording.", chat_lease,
    ),
    Variable(
        "TWITCH_BOT_USERNAME", "twitch_bot_username", "Chat", "",
        "Login the chat connection uses with `TWITCH_OAUTH_TOKEN`; empty: anonymous, read-only "
        "(`justinfan<digits>`).", login,
    ),
    Variable(
        "TWITCH_OAUTH_TOKEN", "twitch_oauth_token", "Chat", None,
        "User token of that login for chat (with or without `oauth:`); needs "
        "`TWITCH_BOT_USERNAME`.",
        oauth_token, secret=True,
    ),
    Variable(
        "TWITCH_IRC_URL", "twitch_irc_url", "Chat", "wss://irc-ws.chat.twitch.tv:443",
        "Chat endpoint: `wss://` or `ws://` (WebSocket), `ircs://` (TLS) or `irc://`.",
        parse_irc_url,
    ),
    Variable(
        "VOD_RECONCILE_WINDOW", "vod_reconcile_window_s", "Chat", "15m",
        "A placeholder (chat of a live stream) still without its VOD this long after the "
        "stream ended is reported by `/status`; a VOD without a stream id is matched to a "
        "placeholder whose start is this close.", positive_duration,
    ),
    Variable(
        "CHAT_REPLAY", "chat_replay", "Chat", "1",
        "`1`: fetch every finished VOD's chat replay (and chapters) from Twitch GQL, merged with "
        "live chat by message id; `0`: live chat only.", flag,
    ),
    Variable(
        "CHAT_REPLAY_INTERVAL", "chat_replay_interval_s", "Chat", "250ms",
        "Least time between the starts of two GQL requests (politeness: Twitch publishes no "
        "limit). 429 and 5xx answers back off further.", parse_duration,
    ),
    Variable(
        "CHAT_REPLAY_RETRY", "chat_replay_retry_s", "Chat", "6h",
        "When a replay Twitch refused (integrity check, no comments, deleted VOD) is asked again.",
        positive_duration,
    ),
    # Pipeline
    Variable(
        "DISCOVERY_INTERVAL", "discovery_interval_s", "Pipeline", "5m",
        "How often each channel's VOD list is read from Helix.", positive_duration,
    ),
    Variable(
        "MAX_CONCURRENT_DOWNLOADS", "max_concurrent_downloads", "Pipeline", "1",
        "VODs downloaded at once by this daemon (0 turns the download stage off).",
        int_in(0, 32),
    ),
    Variable(
        "DOWNLOAD_MAX_ATTEMPTS", "download_max_attempts", "Pipeline", "5",
        "Failed download attempts after which a VOD is `failed_permanent`.", int_in(1, 100),
    ),
    Variable(
        "DOWNLOAD_BACKOFF_BASE", "download_backoff_base_s", "Pipeline", "1m",
        "Wait after the first failed attempt; doubles with each further failure.",
        positive_duration,
    ),
    Variable(
        "DOWNLOAD_BACKOFF_MAX", "download_backoff_max_s", "Pipeline", "6h",
        "Longest wait between two download attempts.", positive_duration,
    ),
    Variable(
        "CLAIM_POLL_INTERVAL", "claim_poll_interval_s", "Pipeline", "1m",
        "How often an idle download or upload worker looks for work when nothing woke it. Workers "
        "are woken through PostgreSQL LISTEN/NOTIFY when a VOD becomes claimable, and sleep until "
        "the next retry or lease falls due, so this is only the fallback; while the LISTEN "
        "connection is down they look every 5 s.",
        positive_duration,
    ),
    Variable(
        "MAX_CONCURRENT_UPLOADS", "max_concurrent_uploads", "Pipeline", "1",
        "VODs uploaded at once by this daemon (0 turns the upload stage off).", int_in(0, 16),
    ),
    Variable(
        "UPLOAD_MAX_ATTEMPTS", "upload_max_attempts", "Pipeline", "5",
        "Failed upload attempts after which a VOD is `failed_permanent` (quota, credentials and "
        "restarts do not count).", int_in(1, 100),
    ),
    Variable(
        "UPLOAD_BACKOFF_BASE", "upload_backoff_base_s", "Pipeline", "1m",
        "Wait after the first failed upload attempt; doubles with each further failure.",
        positive_duration,
    ),
    Variable(
        "UPLOAD_BACKOFF_MAX", "upload_backoff_max_s", "Pipeline", "6h",
        "Longest wait between two upload attempts.", positive_duration,
    ),
    Variable(
        "UPLOAD_RETRY_BASE", "upload_retry_base_s", "Pipeline", "1s",
        "Within an attempt, the first wait before asking YouTube what it holds after a failed "
        "chunk (doubling, jittered, at most a minute, 8 times).", positive_duration,
    ),
    Variable(
        "CIRCUIT_FAILURE_THRESHOLD", "circuit_failure_threshold", "Pipeline", "5",
        "Consecutive failed uploads that open the circuit breaker.", int_in(1, 1000),
    ),
    Variable(
        "CIRCUIT_OPEN_COOLDOWN", "circuit_open_cooldown_s", "Pipeline", "15m",
        "How long an open breaker stops uploads before one probe upload is let through.",
        positive_duration,
    ),
    # Media
    Variable(
        "DOWNLOAD_CONCURRENT_FRAGMENTS", "download_concurrent_fragments", "Media", "16",
        "HLS fragments yt-dlp fetches in parallel for one VOD (chosen by `make bench`).",
        int_in(1, 64),
    ),
    Variable(
        "DOWNLOAD_RATE_LIMIT", "download_rate_limit", "Media", "",
        "Bandwidth cap of one download in bytes a second (`500K`, `10M`); empty: none.", rate,
    ),
    Variable(
        "DOWNLOAD_SIZE_ESTIMATE_MBPS", "download_size_estimate_mbps", "Media", "8",
        "Bitrate assumed to estimate a VOD's size from its duration before downloading it "
        "(Twitch's source quality is at most about 8 Mbps).", positive_float,
    ),
    # Storage (download)
    Variable(
        "DISK_MIN_FREE_GB", "disk_min_free_gb", "Storage", "5",
        "Free space DATA_DIR must keep: a download that would eat into it waits "
        "(`waiting_for_disk`) until space returns.", positive_float,
    ),
    Variable(
        "DISK_FULL_RELEASE_AFTER", "disk_full_release_after_s", "Storage", "30m",
        "A download waiting for disk keeps the fragments it fetched, for the resume, this long "
        "without progress; then they are removed, so a disk that stays full is not held at "
        "100 %, and the VOD downloads from scratch once space returns. 0: remove them at once.",
        parse_duration,
    ),
    # Storage (retention) and Notifications (issue 12)
    Variable(
        "RETENTION_KEEP_DAYS", "retention_keep_days", "Storage", "",
        "Days an uploaded VOD's local files are kept once every part is confirmed on YouTube; "
        "0 deletes them at once. Empty: `DELETE_AFTER_UPLOAD` decides (1 is 0 days, 0 is "
        "forever).", parse_days,
    ),
    Variable(
        "RETENTION_MAX_GB", "retention_max_gb", "Storage", "",
        "Cap on the VOD files in DATA_DIR, in GiB: while over it, the oldest uploaded VODs' "
        "files go first (never those of a VOD still needed). Empty: no cap.", parse_max_gb,
    ),
    Variable(
        "RETENTION_FAILED_DAYS", "retention_failed_days", "Storage", "30",
        "Days the files of a VOD failed for good, canceled, skipped or gone are kept (from "
        "when it entered that state). `never`: keep them.", parse_days,
    ),
    Variable(
        "RETENTION_SWEEP_INTERVAL", "retention_sweep_interval_s", "Storage", "10m",
        "How often the sweeper applies these rules and removes directories no VOD owns.",
        positive_duration,
    ),
    Variable(
        "NOTIFY_URLS", "notify_urls", "Notifications", None,
        "Apprise URLs to notify (`ntfy://topic`, `discord://id/token`, `json://host/path`, "
        "`mailto://...`), separated by spaces or commas. Treated as a secret. Unset: events are "
        "recorded, not sent.", parse_notify_urls, secret=True,
    ),
    Variable(
        "NOTIFY_EVENTS", "notify_events", "Notifications", DEFAULT_EVENTS,
        "Which events to send: names, `all`, `-name` to leave one out.", parse_events,
    ),
    Variable(
        "CONSOLE_URL", "console_url", "Notifications", "",
        "Base URL of this daemon as the operator reaches it, for links in messages "
        "(`<base>/ui/vods/<id>`). Empty: `http://` and the address HTTP_ADDR is bound to.",
        parse_console_url,
    ),
    Variable(
        "AT_RISK_WINDOW", "at_risk_window_s", "Notifications", "48h",
        "A VOD not yet on YouTube whose Twitch copy expires within this is `at_risk` (told "
        "once, and again at 12h; listed with a countdown on the console's dashboard).",
        positive_duration,
    ),
    Variable(
        "YOUTUBE_TOKEN_LIFETIME", "youtube_token_lifetime", "Notifications", "",
        "How long Google's refresh tokens live for your project (`7d` for a project in "
        "'Testing'); `token_expiring` is sent 2 days (at most half of it) before. Empty: "
        "unknown, never sent.", parse_optional_duration,
    ),
    Variable(
        "NOTIFY_CHECK_INTERVAL", "notify_check_interval_s", "Notifications", "1m",
        "How often the periodic conditions (at_risk, disk_low, chat_overdue, token_expiring, "
        "twitch_auth_failed) are looked for.", positive_duration,
    ),
    Variable(
        "NOTIFY_RETRY_BASE", "notify_retry_base_s", "Notifications", "30s",
        "Wait after a failed delivery; doubles up to an hour. After a day an event is given up "
        "(`failed`, shown in `/status`).", positive_duration,
    ),
    # YouTube
    Variable(
        "YOUTUBE_UPLOAD_ENABLED", "youtube_upload_enabled", "YouTube", "1",
        "0 keeps downloaded VODs in `downloaded`; they are published once this is 1 again.",
        flag,
    ),
    Variable(
        "YT_CLIENT_ID", "yt_client_id", "YouTube", "",
        "OAuth client id of your Google Cloud project (a Desktop app client). Without it and "
        "the secret, uploads are off and downloaded VODs wait.", nonempty,
    ),
    Variable(
        "YT_CLIENT_SECRET", "yt_client_secret", "YouTube", None,
        "That client's secret.", secret, secret=True,
    ),
    Variable(
        "YT_REFRESH_TOKEN", "yt_refresh_token", "YouTube", None,
        "A refresh token to store at start-up instead of running `vodarchiver auth youtube` "
        "(stored again only when it changes; the stored one is rotated as Google says).",
        secret, secret=True,
    ),
    Variable(
        "ENCRYPTION_KEY", "encryption_key", "YouTube", None,
        "Base64 of 32 random bytes (`openssl rand -base64 32`): OAuth tokens are stored "
        "encrypted with it (AES-256-GCM). Keep it: without it the stored tokens cannot be read.",
        encryption_key, secret=True,
    ),
    Variable(
        "ALLOW_PLAINTEXT_TOKENS", "allow_plaintext_tokens", "YouTube", "0",
        "1 lets tokens be stored unencrypted when ENCRYPTION_KEY is unset (not recommended).",
        flag,
    ),
    Variable(
        "YOUTUBE_API_URL", "youtube_api_url", "YouTube", "https://www.googleapis.com",
        "Base URL of the YouTube Data API and its upload endpoint.", http_url,
    ),
    Variable(
        "GOOGLE_TOKEN_URL", "google_token_url", "YouTube", "https://oauth2.googleapis.com/token",
        "Google's OAuth token endpoint.", http_url,
    ),
    Variable(
        "GOOGLE_AUTH_URL", "google_auth_url", "YouTube",
        "https://accounts.google.com/o/oauth2/auth",
        "Google's consent page, for `vodarchiver auth youtube`.", http_url,
    ),
    Variable(
        "UPLOAD_CHUNK_SIZE", "upload_chunk_size", "YouTube", "64M",
        "Bytes per upload request (a multiple of 256K; chosen by `make bench`). A failed chunk "
        "resumes from what YouTube holds.", chunk_size,
    ),
    Variable(
        "YOUTUBE_TITLE_TEMPLATE", "youtube_title_template", "YouTube",
        "{title} - {channel} {date}",
        "Video title. Fields: {channel} {title} {date} {vod_id} {url} {duration} {part} {parts} "
        "{chapters}. Cut to 100 characters; ` (Part n/N)` is added to split VODs.", template,
    ),
    Variable(
        "YOUTUBE_DESCRIPTION_TEMPLATE", "youtube_description_template", "YouTube",
        DEFAULT_DESCRIPTION,
        "Video description, same fields (`\\n` for a new line). Twitch's muted ranges and the "
        "marker that identifies the upload are added; cut to 5,000 bytes.", template,
    ),
    Variable(
        "YOUTUBE_PRIVACY", "youtube_privacy", "YouTube", "private",
        "`private`, `unlisted` or `public`.", choice("private", "unlisted", "public"),
    ),
    Variable(
        "YOUTUBE_CATEGORY_ID", "youtube_category_id", "YouTube", "20",
        "YouTube category id (20 is Gaming).", int_in(1, 99),
    ),
    Variable(
        "YOUTUBE_TAGS", "youtube_tags", "YouTube", "",
        "Comma-separated tags added to every video (500 characters in all).", tags,
    ),
    Variable(
        "YOUTUBE_PLAYLISTS", "youtube_playlists", "YouTube", "",
        "Playlist per channel, as `login=playlistId` pairs; each video is added to it.",
        playlists,
    ),
    Variable(
        "YOUTUBE_MAX_PART_DURATION", "youtube_max_part_duration_s", "YouTube", "11h55m",
        "A longer VOD is split (stream copy, at keyframes) into parts titled (Part n/N).",
        positive_duration,
    ),
    Variable(
        "YOUTUBE_MAX_PART_SIZE", "youtube_max_part_size", "YouTube", "256G",
        "A larger VOD is split too (YouTube takes at most 256 GB per video).", parse_size,
    ),
    Variable(
        "YOUTUBE_SPLIT_CHAPTER_DISTANCE", "youtube_split_chapter_distance_s", "YouTube", "30m",
        "A long VOD is cut at the chapter (game) boundary nearest below the part limit when one "
        "lies this close to it, else at the limit; 0 never moves a cut to a chapter.",
        parse_duration,
    ),
    Variable(
        "YOUTUBE_THUMBNAILS", "youtube_thumbnails", "YouTube", "1",
        "1 sets each part's thumbnail (Twitch's, or a frame of the file) with `thumbnails.set` "
        "(50 units), after the upload and never with the units the next upload needs.", flag,
    ),
    Variable(
        "YOUTUBE_CHAT_CAPTIONS", "youtube_chat_captions", "YouTube", "0",
        "1 adds each part's chat as a caption track (`captions.insert`, 400 units); needs the "
        "`youtube.force-ssl` scope, asked for by `vodarchiver auth youtube` when this is 1.", flag,
    ),
    Variable(
        "YOUTUBE_CAPTIONS_NAME", "youtube_captions_name", "YouTube", "Twitch chat",
        "Name of the chat caption track (an existing track of this name is not added again).",
        nonempty,
    ),
    Variable(
        "YOUTUBE_CAPTIONS_LANGUAGE", "youtube_captions_language", "YouTube", "en",
        "Language code of the chat caption track.", nonempty,
    ),
    Variable(
        "YOUTUBE_QUOTA_BUDGETS", "youtube_quota_budgets", "YouTube", "default=10000",
        "Daily quota buckets, as `bucket=units` pairs (reset at midnight Pacific time).",
        quota_budgets,
    ),
    Variable(
        "YOUTUBE_QUOTA_COSTS", "youtube_quota_costs", "YouTube",
        "videos.insert=default:1600",
        "Price of each call as `call=bucket:units` (calls: videos.insert, videos.list, "
        "channels.list, playlistItems.list, playlistItems.insert, videos.delete, thumbnails.set, "
        "captions.list, captions.insert; unnamed ones cost 1, 50 for playlistItems.insert, "
        "videos.delete, thumbnails.set and captions.list, 400 for captions.insert, from "
        "`default`). Google's separate upload bucket: "
        "`YOUTUBE_QUOTA_BUDGETS=default=10000,uploads=100` and "
        "`YOUTUBE_QUOTA_COSTS=videos.insert=uploads:1`.", quota_costs,
    ),
    Variable(
        "UPLOAD_LIMIT_COOLDOWN", "upload_limit_cooldown_s", "YouTube", "6h",
        "How long uploads pause after YouTube's uploadLimitExceeded.", positive_duration,
    ),
    Variable(
        "DELETE_AFTER_UPLOAD", "delete_after_upload", "YouTube", "1",
        "1 deletes a VOD's local files once every part is confirmed on YouTube.", flag,
    ),
    # Database
    Variable(
        "DATABASE_URL", "database_url", "Database", None,
        "PostgreSQL to use, as a `postgresql://` URL or libpq `key=value` string. "
        "Unset: the daemon runs its own private PostgreSQL with its data under "
        "`DATA_DIR/postgres`.",
        parse_database_url, secret=True,
    ),
    Variable(
        "DATABASE_PASSWORD", "database_password", "Database", None,
        "Password for DATABASE_URL's user, passed to libpq as a parameter so any character "
        "works unescaped (compose uses it); it replaces a password written in the URL.",
        secret, secret=True,
    ),
    Variable(
        "DATABASE_POOL_MIN_SIZE", "database_pool_min_size", "Database", "1",
        "Connections the pool keeps open.", int_in(0, 100),
    ),
    Variable(
        "DATABASE_POOL_MAX_SIZE", "database_pool_max_size", "Database", "10",
        "Most connections the pool opens.", int_in(1, 100),
    ),
    Variable(
        "DATABASE_CONNECT_TIMEOUT", "database_connect_timeout_s", "Database", "10s",
        "How long start-up waits for PostgreSQL to accept a connection before giving up (exit 2).",
        positive_duration,
    ),
    Variable(
        "MIGRATION_LOCK_TIMEOUT", "migration_lock_timeout_s", "Database", "10m",
        "How long start-up waits for another replica's migration to finish before giving up.",
        positive_duration,
    ),
    Variable(
        "EMBEDDED_PG_PORT", "embedded_pg_port", "Database", "0",
        "Loopback port of the embedded PostgreSQL; 0 picks a free one at each start.",
        int_in(0, 65535),
    ),
    # Storage
    Variable(
        "DATA_DIR", "data_dir", "Storage", "./data",
        "Where downloads and the embedded PostgreSQL live.", path,
    ),
    # HTTP
    Variable(
        "HTTP_ADDR", "http_addr", "HTTP", "127.0.0.1:8080",
        "Address of `/healthz`, `/readyz`, `/status` and `/metrics`; port 0 picks a free port.",
        parse_host_port,
    ),
    Variable(
        "ADMIN_TOKEN", "admin_token", "HTTP", None,
        "Bearer token every `/admin/` route requires (`Authorization: Bearer <token>`, or a "
        "session cookie from `POST /login`); at least 16 printable characters, e.g. "
        "`openssl rand -hex 24`. Unset: `/admin/` answers loopback clients only.",
        admin_token, secret=True,
    ),
    Variable(
        "HTTP_ALLOWED_HOSTS", "http_allowed_hosts", "HTTP", "",
        "Comma-separated host names the HTTP server answers to, besides loopback names, IP "
        "addresses and the `HTTP_ADDR` host; any other `Host` header is refused (DNS rebinding).",
        host_names,
    ),
    Variable(
        "HTTP_HEADER_TIMEOUT", "http_header_timeout_s", "HTTP", "10s",
        "How long a client has to send a complete request head, from when it connects (and "
        "again after each response); a slower one is disconnected. A request being answered is "
        "never cut by it.", positive_duration,
    ),
    Variable(
        "HTTP_MAX_CONNECTIONS", "http_max_connections", "HTTP", "200",
        "Most connections open at once: beyond it, idle ones (waiting for a request or kept "
        "alive) are closed, oldest first, and when all are busy the next request gets 503.",
        int_in(1, 100_000),
    ),
    # Logging
    Variable(
        "LOG_LEVEL", "log_level", "Logging", "info",
        "`debug`, `info`, `warning` or `error`.", log_level,
    ),
    Variable(
        "LOG_FORMAT", "log_format", "Logging", "text",
        "`text` (key=value lines) or `json` (one object per line).", choice("text", "json"),
    ),
    # Daemon
    Variable(
        "SHUTDOWN_TIMEOUT", "shutdown_timeout_s", "Daemon", "8s",
        "The whole budget of a stop on SIGTERM or SIGINT: running work gets most of it to "
        "checkpoint, the database the rest; then the daemon exits regardless.",
        positive_duration,
    ),
    Variable(
        "ENV_FILE", "env_file", "Daemon", ".env",
        "Optional file of `NAME=value` lines read before the environment (the environment wins). "
        "A missing default `.env` is ignored; a missing file named here is an error.",
        path,
    ),
)  # fmt: skip

GROUPS: tuple[str, ...] = ("Twitch", "Chat", "YouTube", "Database", "Storage", "Media", "Pipeline",
                           "HTTP", "Logging", "Daemon", "Notifications")  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Every setting, typed and validated. Build it with `load_settings`."""

    twitch_channels: tuple[str, ...]
    twitch_channel: tuple[str, ...]
    twitch_client_id: str
    twitch_client_secret: Secret | None
    twitch_api_url: str
    twitch_auth_url: str
    twitch_retention_days: dict[str, int]
    helix_timeout_s: float
    twitch_vod_types: tuple[str, ...]
    twitch_gql_url: str
    twitch_gql_client_id: str
    chat_auto_start: bool
    chat_poll_interval_s: float
    chat_offline_grace_s: float
    chat_flush_interval_s: float
    chat_redundancy: int
    chat_lease_s: float
    twitch_bot_username: str
    twitch_oauth_token: Secret | None
    twitch_irc_url: IrcEndpoint
    vod_reconcile_window_s: float
    chat_replay: bool
    chat_replay_interval_s: float
    chat_replay_retry_s: float
    discovery_interval_s: float
    max_concurrent_downloads: int
    download_max_attempts: int
    download_backoff_base_s: float
    download_backoff_max_s: float
    claim_poll_interval_s: float
    download_concurrent_fragments: int
    download_rate_limit: str
    download_size_estimate_mbps: float
    disk_min_free_gb: float
    disk_full_release_after_s: float
    youtube_upload_enabled: bool
    yt_client_id: str
    yt_client_secret: Secret | None
    yt_refresh_token: Secret | None
    encryption_key: Secret | None
    allow_plaintext_tokens: bool
    youtube_api_url: str
    google_token_url: str
    google_auth_url: str
    upload_chunk_size: int
    youtube_title_template: str
    youtube_description_template: str
    youtube_privacy: str
    youtube_category_id: int
    youtube_tags: tuple[str, ...]
    youtube_playlists: dict[str, str]
    youtube_max_part_duration_s: float
    youtube_max_part_size: int
    youtube_split_chapter_distance_s: float
    youtube_thumbnails: bool
    youtube_chat_captions: bool
    youtube_captions_name: str
    youtube_captions_language: str
    youtube_quota_budgets: dict[str, int]
    youtube_quota_costs: dict[str, tuple[str, int]]
    upload_limit_cooldown_s: float
    delete_after_upload: bool
    max_concurrent_uploads: int
    upload_max_attempts: int
    upload_backoff_base_s: float
    upload_backoff_max_s: float
    upload_retry_base_s: float
    circuit_failure_threshold: int
    circuit_open_cooldown_s: float
    retention_keep_days: float | None
    retention_max_gb: float | None
    retention_failed_days: float | None
    retention_sweep_interval_s: float
    notify_urls: Secret | None
    notify_events: frozenset[Event]
    console_url: str
    at_risk_window_s: float
    youtube_token_lifetime: timedelta | None
    notify_check_interval_s: float
    notify_retry_base_s: float
    database_url: DatabaseUrl | None
    database_password: Secret | None
    database_pool_min_size: int
    database_pool_max_size: int
    database_connect_timeout_s: float
    migration_lock_timeout_s: float
    embedded_pg_port: int
    data_dir: Path
    http_addr: HostPort
    admin_token: Secret | None
    http_allowed_hosts: tuple[str, ...]
    http_header_timeout_s: float
    http_max_connections: int
    log_level: str
    log_format: str
    shutdown_timeout_s: float
    env_file: Path
    unknown_env_file_keys: tuple[str, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel to archive: TWITCH_CHANNELS, then TWITCH_CHANNEL if not already there."""
        return tuple(dict.fromkeys((*self.twitch_channels, *self.twitch_channel)))

    def discovery_off_reason(self) -> str | None:
        """Why discovery cannot run with these settings, or None when it can."""
        missing = [name for name, value in (
            ("TWITCH_CLIENT_ID", self.twitch_client_id),
            ("TWITCH_CLIENT_SECRET", self.twitch_client_secret and self.twitch_client_secret.get()),
        ) if not value]  # fmt: skip
        if missing:
            return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
        if not self.channels:
            return "no channel configured (TWITCH_CHANNELS or TWITCH_CHANNEL)"
        return None

    def upload_off_reason(self) -> str | None:
        """Why the upload stage cannot run with these settings, or None when it can."""
        if not self.youtube_upload_enabled:
            return "YOUTUBE_UPLOAD_ENABLED is 0"
        if self.max_concurrent_uploads == 0:
            return "MAX_CONCURRENT_UPLOADS is 0"
        if not self.yt_client_id or not (self.yt_client_secret and self.yt_client_secret.get()):
            return "YT_CLIENT_ID and YT_CLIENT_SECRET are not set"
        return None

    def chat_off_reason(self) -> str | None:
        """Why no chat is recorded with these settings, or None when it is."""
        if self.chat_auto_start:
            if not self.channels:
                return "CHAT_AUTO_START is 1 but no channel is configured (TWITCH_CHANNELS)"
            off = self.discovery_off_reason()
            return f"CHAT_AUTO_START needs Helix: {off}" if off else None
        if not self.twitch_channel:
            return "neither CHAT_AUTO_START=1 nor TWITCH_CHANNEL is set"
        return None

    def secret_values(self) -> tuple[str, ...]:
        """Every secret string, so the logger can scrub them wherever they appear."""
        found: list[str] = []
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if isinstance(value, Secret):
                found.append(value.get())
            elif isinstance(value, DatabaseUrl):
                found += [s.get() for s in (value.password, value.password_as_written) if s]
        return tuple(v for v in found if v)

    def describe(self) -> dict[str, str]:
        """Each variable with its effective value, secrets redacted: for `vodarchiver config`."""
        shown: dict[str, str] = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if value is None:
                shown[var.name] = "(unset)"
            elif isinstance(value, DatabaseUrl):
                shown[var.name] = value.redacted + (" (password set)" if value.password else "")
            elif isinstance(value, Secret):
                shown[var.name] = REDACTED if value.get() else "(unset)"
            elif isinstance(value, tuple):
                shown[var.name] = ",".join(value) or "(none)"
            elif isinstance(value, IrcEndpoint):
                shown[var.name] = value.url
            elif isinstance(value, dict):
                shown[var.name] = ",".join(f"{k}={v}" for k, v in value.items()) or "(none)"
            elif isinstance(value, frozenset):
                shown[var.name] = ",".join(sorted(map(str, value))) or "(none)"
            else:
                shown[var.name] = str(value)
        return shown


def _youtube_problems(values: Mapping[str, Any]) -> list[str]:
    """Settings of the YouTube group that contradict each other."""
    problems = []
    client_id, secret = values.get("yt_client_id"), values.get("yt_client_secret")
    if client_id and not (secret and secret.get()):
        problems.append("YT_CLIENT_SECRET: must be set when YT_CLIENT_ID is")
    if secret and secret.get() and not client_id:
        problems.append("YT_CLIENT_ID: must be set when YT_CLIENT_SECRET is")
    token = values.get("yt_refresh_token")
    if token and token.get():
        if not client_id:
            problems.append("YT_REFRESH_TOKEN: needs YT_CLIENT_ID and YT_CLIENT_SECRET")
        if values.get("encryption_key") is None and values.get("allow_plaintext_tokens") is False:
            problems.append(
                "ENCRYPTION_KEY: must be set to store YT_REFRESH_TOKEN (openssl rand -base64 32), "
                "or set ALLOW_PLAINTEXT_TOKENS=1 to store tokens unencrypted on purpose"
            )
    budgets, costs = values.get("youtube_quota_budgets"), values.get("youtube_quota_costs")
    if isinstance(budgets, dict) and isinstance(costs, dict):
        from vodarchiver.pipeline.quota import check_plan  # noqa: PLC0415

        problems += [f"YOUTUBE_QUOTA_COSTS: {p}" for p in check_plan(budgets, costs)]
    return problems


def _database_password(values: dict[str, Any]) -> list[str]:
    """Fold DATABASE_PASSWORD into DATABASE_URL (as a libpq parameter, never into URL text)."""
    password, url = values.get("database_password"), values.get("database_url")
    if not (isinstance(password, Secret) and password.get()):
        return []
    if not isinstance(url, DatabaseUrl):
        return ["DATABASE_PASSWORD: set DATABASE_URL too (the embedded server has its own)"]
    values["database_url"] = with_password(url, password)
    return []


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every variable from `environ` and the optional env file.

    Raises ConfigError naming every bad variable; never prints a secret in the message.
    """
    problems: list[str] = []
    env_file_raw = environ.get("ENV_FILE", "").strip()
    env_file = Path(env_file_raw or ".env").expanduser()
    file_values: dict[str, str] = {}
    if env_file.exists():
        try:
            # No ${VAR} expansion: a password containing "$" must arrive exactly as written.
            values_read = dotenv_values(env_file, interpolate=False)
            file_values = {k: v for k, v in values_read.items() if v is not None}
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"ENV_FILE: cannot read {env_file}: {exc.__class__.__name__}")
    elif env_file_raw:
        problems.append(f"ENV_FILE: no such file: {env_file}")

    merged = {**file_values, **environ}
    values: dict[str, Any] = {}
    for var in VARIABLES:
        raw = merged.get(var.name)
        if raw is None or not raw.strip():
            raw = var.default
        if raw is None:
            values[var.attr] = None
            continue
        try:
            values[var.attr] = var.parse(raw)
        except ValueError as exc:
            problems.append(f"{var.name}: {exc}")

    pool_min, pool_max = values.get("database_pool_min_size"), values.get("database_pool_max_size")
    if isinstance(pool_min, int) and isinstance(pool_max, int) and pool_min > pool_max:
        problems.append(
            "DATABASE_POOL_MIN_SIZE: must not exceed DATABASE_POOL_MAX_SIZE "
            f"({pool_min} > {pool_max})"
        )
    problems += _database_password(values)
    client_id, secret = values.get("twitch_client_id"), values.get("twitch_client_secret")
    if client_id and not (secret and secret.get()):
        problems.append("TWITCH_CLIENT_SECRET: must be set when TWITCH_CLIENT_ID is")
    if secret and secret.get() and not client_id:
        problems.append("TWITCH_CLIENT_ID: must be set when TWITCH_CLIENT_SECRET is")
    problems += _youtube_problems(values)
    token = values.get("twitch_oauth_token")
    if token and token.get() and not values.get("twitch_bot_username"):
        problems.append("TWITCH_BOT_USERNAME: must be set when TWITCH_OAUTH_TOKEN is")
    if problems:
        raise ConfigError(problems)

    known = {var.name for var in VARIABLES}
    values["unknown_env_file_keys"] = tuple(
        sorted(k for k in file_values if k not in known and not k.startswith(FOREIGN_PREFIXES))
    )
    return Settings(**values)
