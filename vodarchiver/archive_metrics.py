"""Metrics of the archive-completeness work (chat replay, coverage, extras).

Kept apart from `metrics.py` so the stages of issue 13 register what they export in one place;
they live on the same instance-owned registry, so `/metrics` shows them with the rest.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ArchiveMetrics:
    """Chat replay, chat coverage and YouTube extras."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.replay_pages = Counter(
            "vodarchiver_chat_replay_requests_total",
            "Chat replay requests to Twitch GQL, by outcome (ok, integrity, comments_null, "
            "video_null, malformed, unavailable).",
            ["outcome"],
            registry=registry,
        )
        self.replay_messages = Counter(
            "vodarchiver_chat_replay_messages_total",
            "Replayed messages: new rows, or merged into a message live chat had stored.",
            ["kind"],
            registry=registry,
        )
        self.replay_runs = Counter(
            "vodarchiver_chat_replay_runs_total",
            "Replay runs over one VOD, by outcome (done, unavailable, put_back, lease_lost).",
            ["outcome"],
            registry=registry,
        )
        self.extras = Counter(
            "vodarchiver_youtube_extras_total",
            "Extras of published parts by kind (thumbnail, captions) and outcome (done, pending, "
            "refused, skipped).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.coverage = Gauge(
            "vodarchiver_chat_coverage_ratio",
            "Minutes with chat from at least one source over the VOD's minutes, for the channel's "
            "VOD whose replay finished last.",
            ["channel"],
            registry=registry,
        )
        self.gap_minutes = Gauge(
            "vodarchiver_chat_gap_minutes",
            "Minutes without chat from any source in the channel's VOD whose replay finished last.",
            ["channel"],
            registry=registry,
        )
