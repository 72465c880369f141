"""The shipped dashboard and alerts query only what a real daemon exports; `vodarchiver
healthcheck` finds the daemon through HTTP_ADDR."""

from __future__ import annotations

import asyncio
import signal
import sys

from tests.daemon import Daemon, base_env, get
from tests.promql import SYNTHETIC, alert_rules, dashboard_queries, exported_names, metric_names


async def healthcheck(env: dict[str, str]) -> tuple[int, str]:
    """Run `vodarchiver healthcheck` as a container would; (exit status, output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vodarchiver", "healthcheck", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_dashboard_and_alerts_use_only_exported_metrics_and_healthcheck_follows_http_addr(
    db_url: str,
) -> None:
    """Every panel query and alert expression names metrics the daemon's /metrics exports; the
    healthcheck verb answers 0 at the daemon's HTTP_ADDR and 1 where nothing listens."""
    env = base_env(DATABASE_URL=db_url)
    daemon = await Daemon(env).start()
    try:
        base = await daemon.started()
        page = (await get(f"{base}/metrics")).text
        addr = base.removeprefix("http://")
        ok, ok_out = await healthcheck({**env, "HTTP_ADDR": addr})
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
        down, down_out = await healthcheck({**env, "HTTP_ADDR": addr})
    finally:
        await daemon.stop()

    exported = exported_names(page) | SYNTHETIC
    queries = dashboard_queries()
    assert len(queries) >= 20
    for title, expr in queries:
        unknown = metric_names(expr) - exported
        assert not unknown, f"dashboard panel {title!r} queries unknown metrics {unknown}"
    for rule in alert_rules():
        unknown = metric_names(rule["expr"]) - exported
        assert not unknown, f"alert {rule['alert']} uses unknown metrics {unknown}"
    used = {name for _, expr in queries for name in metric_names(expr)}
    for promised in ("vodarchiver_vods", "vods_expiring_soon", "vods_next_expiry_timestamp_seconds",
                     "vod_download_bytes_total", "vod_upload_duration_seconds_bucket",
                     "youtube_quota_remaining", "vod_circuit_open", "chat_write_lag_seconds",
                     "discovery_passes_total", "helix_ratelimit_waits_total",
                     "vodarchiver_disk_free_bytes"):  # fmt: skip
        assert promised in used, f"the dashboard has no panel for {promised}"

    assert ok == 0, ok_out
    assert "answered 200" in ok_out
    assert down == 1, down_out
    assert "/healthz" in down_out


async def test_disk_free_is_reported_before_any_download(db_url: str) -> None:
    """An idle daemon reports DATA_DIR's real free space, so the disk alert never sees a false 0."""
    daemon = await Daemon(base_env(DATABASE_URL=db_url)).start()
    try:
        base = await daemon.started()
        page = (await get(f"{base}/metrics")).text
        daemon.send(signal.SIGTERM)
        await daemon.wait_exit()
    finally:
        await daemon.stop()
    line = next(x for x in page.splitlines() if x.startswith("vodarchiver_disk_free_bytes "))
    assert float(line.split()[1]) > 0
