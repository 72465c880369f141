"""Prometheus metrics on an instance-owned registry (never the module-global default one).

Process, platform and GC collectors are registered on the same registry so `/metrics` shows the
daemon's memory, CPU and file descriptors. Later stages add their metrics here.
"""

from __future__ import annotations

import math
import shutil
from datetime import datetime
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from vodarchiver.models import VodState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Every metric the daemon exports, on one registry."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

        self.build_info = Gauge(
            "vodarchiver_build_info",
            "Always 1; the version label says which vodarchiver runs.",
            ["version"],
            registry=self.registry,
        )
        self.build_info.labels(version=version).set(1)
        self.start_time = Gauge(
            "vodarchiver_start_time_seconds",
            "Unix time at which the daemon started.",
            registry=self.registry,
        )
        self.start_time.set_to_current_time()

        self.http_requests = Counter(
            "vodarchiver_http_requests_total",
            "HTTP requests served, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "vodarchiver_http_request_duration_seconds",
            "Time to serve an HTTP request, by route template.",
            ["route"],
            buckets=_HTTP_BUCKETS,
            registry=self.registry,
        )
        self.database_up, self.scrape_slow = self._database_metrics()
        self.vod_queue_depth = Gauge(
            "vod_queue_depth",
            "VODs the pipeline still has to download or upload, retries included.",
            registry=self.registry,
        )
        self.vods = Gauge(
            "vodarchiver_vods",
            "VODs by state.",
            ["state"],
            registry=self.registry,
        )

        self.helix_requests = Counter(
            "helix_requests_total",
            "Requests to Helix and Twitch's token server, by endpoint and status (or error).",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.helix_ratelimit_remaining = Gauge(
            "helix_ratelimit_remaining",
            "Points left in Twitch's rate-limit bucket, as its last answer said.",
            registry=self.registry,
        )
        self.vods_discovered = Counter(
            "vods_discovered_total",
            "VODs seen for the first time, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.vods_expiring_soon = Gauge(
            "vods_expiring_soon",
            "VODs not archived yet that Twitch is expected to delete within 48 hours.",
            registry=self.registry,
        )
        self.vods_next_expiry = Gauge(
            "vods_next_expiry_timestamp_seconds",
            "Unix time at which Twitch is expected to delete the first VOD not archived yet "
            "(NaN while there is none).",
            registry=self.registry,
        )
        self.helix_ratelimit_waits = Counter(
            "helix_ratelimit_waits_total",
            "Times a Helix call waited for Twitch's rate-limit bucket (or after a 429).",
            registry=self.registry,
        )
        self.helix_ratelimit_wait_seconds = Counter(
            "helix_ratelimit_wait_seconds_total",
            "Seconds Helix calls spent waiting for Twitch's rate-limit bucket.",
            registry=self.registry,
        )
        self.discovery_passes = Counter(
            "discovery_passes_total",
            "Discovery passes over one channel, by channel and outcome.",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.discovery_last_success = Gauge(
            "discovery_last_success_timestamp_seconds",
            "Unix time of the last complete discovery pass, by channel.",
            ["channel"],
            registry=self.registry,
        )

        self.downloads_started = Counter(
            "vod_downloads_started_total", "Download attempts started.", registry=self.registry
        )
        self.downloads_succeeded = Counter(
            "vod_downloads_succeeded_total",
            "Downloads that ended with a verified file.",
            registry=self.registry,
        )
        self.downloads_failed = Counter(
            "vod_downloads_failed_total",
            "Download attempts that failed (retryable or not).",
            registry=self.registry,
        )
        self.download_duration = Histogram(
            "vod_download_duration_seconds",
            "Time from the start of a download attempt to its verified file.",
            buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 21600, 43200),
            registry=self.registry,
        )
        self.download_bytes = Counter(
            "vod_download_bytes_total",
            "Bytes fetched by downloads (a resumed download counts only what it fetched).",
            registry=self.registry,
        )
        self.disk_free_bytes = Gauge(
            "vodarchiver_disk_free_bytes",
            "Free space in DATA_DIR.",
            registry=self.registry,
        )
        self.vods_waiting_for_disk = Gauge(
            "vods_waiting_for_disk",
            "VODs whose download waits for free space in DATA_DIR.",
            registry=self.registry,
        )

        self.uploads_succeeded = Counter(
            "vod_uploads_succeeded_total",
            "VODs published to YouTube (every part).",
            registry=self.registry,
        )
        self.uploads_failed = Counter(
            "vod_uploads_failed_total",
            "Upload attempts that failed (retryable or not; quota, auth and shutdowns excluded).",
            registry=self.registry,
        )
        self.upload_duration = Histogram(
            "vod_upload_duration_seconds",
            "Time of the upload attempt that published a VOD.",
            buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 21600, 43200),
            registry=self.registry,
        )
        self.processing_total_duration = Histogram(
            "vod_processing_total_duration_seconds",
            "Time from a VOD's discovery to its last part published.",
            buckets=(300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 604800),
            registry=self.registry,
        )
        self.processing_cycles = Counter(
            "vod_processing_cycles_total",
            "Passes of the upload stage's workers over the queue.",
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "vod_upload_bytes_total",
            "Bytes sent to YouTube (a resumed upload counts only what it sent).",
            registry=self.registry,
        )
        self.upload_chunk_retries = Counter(
            "vod_upload_chunk_retries_total",
            "Chunks that failed (5xx, a cut connection) and were resumed from what YouTube held.",
            registry=self.registry,
        )
        self.circuit_open = Gauge(
            "vod_circuit_open",
            "1 while the upload circuit breaker is open or half open, else 0.",
            registry=self.registry,
        )
        self.youtube_quota_used = Gauge(
            "youtube_quota_used",
            "YouTube quota units spent today (Pacific time), by bucket.",
            ["bucket"],
            registry=self.registry,
        )
        self.youtube_quota_remaining = Gauge(
            "youtube_quota_remaining",
            "YouTube quota units left today (Pacific time), by bucket.",
            ["bucket"],
            registry=self.registry,
        )
        self.uploads_paused = Counter(
            "vod_uploads_paused_total",
            "Times uploads were paused, by reason (quota, upload_limit).",
            ["reason"],
            registry=self.registry,
        )
        self.youtube_auth_waiting = Gauge(
            "youtube_auth_waiting",
            "1 while uploads wait for new YouTube credentials (invalid_grant), else 0.",
            registry=self.registry,
        )
        self.youtube_auth_revoked = Counter(
            "youtube_auth_revoked_total",
            "Times Google refused the stored refresh token.",
            registry=self.registry,
        )
        self.youtube_token_refreshes = Counter(
            "youtube_token_refreshes_total",
            "Access token refreshes, by outcome (ok, invalid_grant, network, an HTTP status).",
            ["outcome"],
            registry=self.registry,
        )
        self.chat_messages_recorded = Counter(
            "chat_messages_recorded_total",
            "Chat events stored (repeats after a reconnect not counted), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.chat_reconnections = Counter(
            "chat_reconnections_total",
            "Chat connections lost or replaced (Twitch's RECONNECT included).",
            registry=self.registry,
        )
        self.chat_lines_rejected = Counter(
            "chat_lines_rejected_total",
            "Chat lines that could not be parsed or used (oversized, not IRC, no id).",
            registry=self.registry,
        )
        self.chat_connected = Gauge(
            "chat_connected",
            "1 while the chat connection of a channel is logged in and joined.",
            ["channel"],
            registry=self.registry,
        )
        self.chat_write_lag = Gauge(
            "chat_write_lag_seconds",
            "Age of the oldest message of the last chat batch when it was committed.",
            registry=self.registry,
        )
        self.chat_login_failures = Counter(
            "chat_login_failures_total",
            "Chat logins Twitch refused (bad or expired token), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.chat_placeholders_overdue = Gauge(
            "chat_placeholders_overdue",
            "Placeholders still without their VOD VOD_RECONCILE_WINDOW after the stream ended.",
            registry=self.registry,
        )

    def _database_metrics(self) -> tuple[Gauge, Counter]:
        """Down is the ping's answer; slow is a scrape whose figures came too late."""
        up = Gauge(
            "vodarchiver_database_up",
            "1 when the last liveness ping of the database succeeded, else 0.",
            registry=self.registry,
        )
        slow = Counter(
            "vodarchiver_scrape_slow_total",
            "Scrapes whose database figures were not read within 2 s although the database "
            "answered its ping (slow or busy, not down); the gauges kept their last values.",
            registry=self.registry,
        )
        return up, slow

    def record_vod_counts(self, counts: dict[VodState, int]) -> None:
        """Refresh the per-state gauges from a count of every state."""
        for state, n in counts.items():
            self.vods.labels(state=state.value).set(n)
        self.vod_queue_depth.set(sum(n for state, n in counts.items() if state.in_queue))

    def watch_disk(self, data_dir: Path) -> None:
        """Read DATA_DIR's free space at every scrape, not only when a download checks it, so an
        idle daemon reports it too (the disk alert needs a real figure, not the initial 0)."""
        self.disk_free_bytes.set_function(lambda: float(shutil.disk_usage(data_dir).free))

    def set_next_expiry(self, when: datetime | None) -> None:
        """The first expiry of an unarchived VOD; NaN while there is none (no false alarm)."""
        self.vods_next_expiry.set(when.timestamp() if when is not None else math.nan)

    def render(self) -> bytes:
        """The exposition text of every metric."""
        return generate_latest(self.registry)
