"""The runbook's log fields: JSON `msg`, the app token's masked tail, `component=vod_process`, escaped text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import psycopg_pool
import pytest

from tests.conftest import logged
from tests.fakes.server import LocalServer
from tests.fakes.twitch import FakeTwitch
from vodarchiver import logs
from vodarchiver.db.probe import DatabaseProbe
from vodarchiver.db.store import Store
from vodarchiver.db.uploads import UploadStore
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.vod_process import log_vod_process
from vodarchiver.twitch.auth import AppToken
from vodarchiver.values import Secret, masked_tail
from vodarchiver.web import Api, build_app


async def test_app_token_line_has_msg_and_only_a_masked_tail(log_lines: io.StringIO) -> None:
    """Acquiring the app token logs `"msg":"twitch app token acquired"` with `token_tail` = … + 4 characters, never the token."""
    fake = FakeTwitch()
    async with LocalServer(fake) as server, httpx.AsyncClient(timeout=5) as http:
        token = AppToken(http, auth_url=f"{server.url}/oauth2", client_id=fake.client_id,
                         client_secret=Secret(fake.client_secret), metrics=Metrics("t"))  # fmt: skip
        value = await token.get()
    text = log_lines.getvalue()
    assert '"msg":"twitch app token acquired"' in text  # the runbook's filter, verbatim
    (line,) = logged(log_lines, "twitch_app_token_acquired")
    assert line["token_tail"] == "\u2026" + value[-4:]
    assert value not in text
    assert value[:-4] not in text


def test_masked_tail_never_shows_more_than_four_characters() -> None:
    """Long credentials show their last 4 characters; short ones nothing but the ellipsis."""
    assert masked_tail("abcdefghijklmnopqrstuvwxyz0123") == "\u20260123"
    assert masked_tail("short-token") == "\u2026"
    assert masked_tail("") == "\u2026"


def test_json_lines_carry_msg_for_ours_and_foreign_records(log_lines: io.StringIO) -> None:
    """Our events get `msg` as a sentence, foreign records their own message; `event` stays."""
    logs.get_logger("x").info("download_finished", dl_ms=5)
    logging.getLogger("uvicorn.error").warning("Started %s", "it")
    first, second = (json.loads(line) for line in log_lines.getvalue().splitlines())
    assert (first["event"], first["msg"]) == ("download_finished", "download finished")
    assert (second["event"], second["msg"]) == ("Started it", "Started it")


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """Text (logfmt) logging into a buffer; the default configuration restored afterwards."""
    out = io.StringIO()
    logs.configure("debug", "text", stream=out)
    yield out
    logs.configure("info", "text")


def test_text_lines_escape_control_characters(text_log: io.StringIO) -> None:
    """NUL, ESC, CR, DEL and U+2028 in a value are written as visible escapes; one event is one line."""
    logs.get_logger("http").info("http_request", path="/a\x00b\x1b[31m\rc\x7f\u2028d\\x00")
    text = text_log.getvalue()
    assert text.count("\n") == 1
    for raw in ("\x00", "\x1b", "\r", "\x7f", "\u2028"):
        assert raw not in text
    assert r'path="/a\x00b\x1b[31m\rc\x7f\u2028d\\x00"' in text  # a literal backslash is doubled


async def test_request_paths_with_control_characters_are_escaped_in_text_logs(
    db_url: str, text_log: io.StringIO
) -> None:
    """A request for a path holding ESC and NUL is refused (400) and logged with them escaped."""
    metrics = Metrics("9.9.9")
    probe = DatabaseProbe(db_url)
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        api = Api(store=UploadStore(pool), probe=probe, metrics=metrics, checks=[],
                  version="9.9.9", started_at=datetime.now(UTC))  # fmt: skip
        transport = httpx.ASGITransport(app=build_app(api, metrics))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answer = await client.get("/vods/%1b[2J%00x")
    await probe.aclose()
    assert answer.status_code == 400
    text = text_log.getvalue()
    assert "\x1b" not in text
    assert "\x00" not in text
    assert r'path="/vods/\x1b[2J\x00x"' in text


async def test_vod_process_line_has_timings_and_queue_depth(
    db_url: str, log_lines: io.StringIO
) -> None:
    """log_vod_process writes component=vod_process with the timings given and the queue depth now."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO vods (twitch_vod_id, channel, state) VALUES ('1', 'c', 'queued'), "
            "('2', 'c', 'downloaded'), ('3', 'c', 'uploaded'), ('4', 'c', 'canceled')"
        )
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=1, open=False) as pool:
        with logs.bound_contextvars(vod_id="2", channel="c"):
            await log_vod_process(Store(pool), "vod_processed", upl_ms=1234.4, total_ms=98765.6)
    (line,) = logged(log_lines, "vod_processed")
    assert line["component"] == "vod_process"
    assert line["msg"] == "vod processed"
    assert (line["vod_id"], line["upl_ms"], line["total_ms"]) == ("2", 1234, 98766)
    assert "dl_ms" not in line
    assert line["queue_depth"] == 2  # queued and downloaded are still in the queue
