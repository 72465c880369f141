"""The runbook's processing lines: `component=vod_process` with timings and a queue-depth snapshot.

The download and upload stages call `log_vod_process` once when a VOD's download or upload is
recorded, so a log search on `component=vod_process` shows every finished step with `dl_ms`,
`upl_ms` and `total_ms` (where the step knows them) and `queue_depth`, the runbook's
`vod_queue_depth` at that moment. The snapshot is one grouped count; if the database does not
answer within a second the line is still written, with `queue_depth` null.
"""

from __future__ import annotations

from typing import Protocol

from vodarchiver.errors import DatabaseUnavailable
from vodarchiver.logs import get_logger
from vodarchiver.models import VodState


class CountsByState(Protocol):
    """The one store query the snapshot needs."""

    async def vod_counts_by_state(self, timeout_s: float = ...) -> dict[VodState, int]: ...


async def log_vod_process(
    store: CountsByState,
    event: str,
    *,
    dl_ms: float | None = None,
    upl_ms: float | None = None,
    total_ms: float | None = None,
) -> None:
    """Write one `component=vod_process` line (vod_id, channel and corr come from the context)."""
    try:
        counts = await store.vod_counts_by_state(timeout_s=1.0)
        depth: int | None = sum(n for state, n in counts.items() if state.in_queue)
    except DatabaseUnavailable:
        depth = None
    timings = {k: round(v) for k, v in (("dl_ms", dl_ms), ("upl_ms", upl_ms),
                                        ("total_ms", total_ms)) if v is not None}  # fmt: skip
    # Asked for at each call: a logger bound at import would keep the configuration of that moment.
    get_logger("vod_process").info(event, **timings, queue_depth=depth)
