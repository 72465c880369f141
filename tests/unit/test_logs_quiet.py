"""Quiet logs at info: HTTP libraries at debug, credential parameters redacted, outages and readiness once per change."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from vodarchiver import logs
from vodarchiver.health import ReadinessLog
from vodarchiver.models import CheckResult


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """JSON lines at info; plain text restored after."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    yield out
    logs.configure("info", "text")


def events(out: io.StringIO) -> list[dict[str, object]]:
    """Every line written, parsed."""
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_http_library_request_lines_appear_only_at_debug_and_redacted(stream: io.StringIO) -> None:
    """httpx's per-request line is dropped at info; at debug it is kept with upload_id and tokens redacted."""
    line = (
        'HTTP Request: PUT http://yt/upload?uploadType=resumable&upload_id=AbC123xyz "HTTP/1.1 308"'
    )
    logging.getLogger("httpx").info(line)
    assert events(stream) == []
    logs.configure("debug", "json", stream=stream)
    logging.getLogger("httpx").info(line)
    logs.get_logger("t").info("x", url="https://h/p?access_token=tok987&sig=s1g&ok=1")
    text = stream.getvalue()
    assert "AbC123xyz" not in text
    assert "tok987" not in text
    assert "s1g" not in text
    assert "ok=1" in text
    assert events(stream)[0]["level"] == "debug"


def test_an_unreachable_database_is_logged_once_not_per_retry(stream: io.StringIO) -> None:
    """The same outage warning from a stage's retries and the pool's reconnects is written once each."""
    log = logs.get_logger("vod_download")
    for _ in range(5):
        log.warning("download_claim_failed", reason="database unavailable: PoolTimeout")
        logging.getLogger("psycopg.pool").warning("error connecting in 'vodarchiver': attempt 3")
    log.warning("download_failed", reason="HTTP 403")
    log.warning("download_failed", reason="HTTP 403")  # not an outage: every line kept
    names = [str(e["event"]) for e in events(stream)]
    assert names.count("download_claim_failed") == 1
    assert sum(n.startswith("error connecting") for n in names) == 1
    assert names.count("download_failed") == 2


def test_readiness_is_logged_when_a_check_changes_not_per_probe(stream: io.StringIO) -> None:
    """Ten failing probes are one warning; the recovery one info line; a passing start says nothing."""
    readiness = ReadinessLog()
    readiness.note({"disk": CheckResult(True, "fine")})
    for n in range(10):
        readiness.note({"disk": CheckResult(False, f"{n} GiB free")})
    readiness.note({"disk": CheckResult(True, "fine")})
    assert [(e["event"], e.get("detail")) for e in events(stream)] == [
        ("readiness_check_failing", "0 GiB free"),
        ("readiness_check_passing", "fine"),
    ]
