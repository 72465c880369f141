"""Log lines: events with a component, in text or JSON, with secrets scrubbed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from vodarchiver import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Capture what the log pipeline writes; restore a plain configuration and no secrets afterwards."""
    out = io.StringIO()
    yield out
    logs.forget_secrets()
    logs.configure("info", "text")


def lines(out: io.StringIO) -> list[dict[str, object]]:
    """The JSON objects written so far."""
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_events_carry_component_context_and_level(stream: io.StringIO) -> None:
    """An event has its name, level, timestamp, component and bound context."""
    logs.configure("info", "json", stream=stream)
    with logs.bound_contextvars(corr="abc"):
        logs.get_logger("vod_download").info("fragment_done", index=3, took_ms=12.5)
    (line,) = lines(stream)
    assert line["event"] == "fragment_done"
    assert line["component"] == "vod_download"
    assert line["corr"] == "abc"
    assert line["level"] == "info"
    assert line["index"] == 3
    assert "timestamp" in line


def test_foreign_loggers_get_a_component(stream: io.StringIO) -> None:
    """Records from uvicorn, psycopg and unknown libraries carry a component too."""
    logs.configure("info", "json", stream=stream)
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 1, extra={"color_message": "x"}
    )
    logging.getLogger("psycopg.pool").warning("error connecting")
    logging.getLogger("somelib.sub").warning("hello")
    got = lines(stream)
    assert [line["component"] for line in got] == ["http", "database", "somelib"]
    assert got[0]["event"] == "Started server process [1]"
    assert "color_message" not in got[0]


def test_level_filters(stream: io.StringIO) -> None:
    """Below LOG_LEVEL nothing is written."""
    logs.configure("warning", "json", stream=stream)
    logs.get_logger("x").info("quiet")
    logs.get_logger("x").warning("loud")
    assert [line["event"] for line in lines(stream)] == ["loud"]


def test_secrets_are_scrubbed_everywhere(stream: io.StringIO) -> None:
    """A registered secret is replaced in values, nested values and tracebacks, in both formats."""
    logs.register_secrets(["pw-Zq9-secret"])
    logs.configure("info", "json", stream=stream)
    log = logs.get_logger("t")
    log.info("connect", url="postgresql://u:pw-Zq9-secret@h/db", nested={"k": ["pw-Zq9-secret"]})
    try:
        raise RuntimeError("auth failed for pw-Zq9-secret")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("psycopg").error("conn pw-Zq9-secret")
    logs.configure("info", "text", stream=stream)
    log.info("again", token="pw-Zq9-secret")
    text = stream.getvalue()
    assert "pw-Zq9-secret" not in text
    assert text.count("**********") >= 5


def test_tracebacks_carry_no_locals_so_long_secrets_cannot_leak_cut(stream: io.StringIO) -> None:
    """A long secret in a frame's local variable appears neither whole nor cut short in a JSON traceback."""
    secret = "S" + "k3y-" * 20 + "end"  # longer than structlog's 80-character cut of locals
    logs.register_secrets([secret])
    logs.configure("info", "json", stream=stream)

    def connect(conninfo: str) -> None:
        raise ConnectionError("could not connect")

    try:
        connect(f"host=h password={secret}")
    except ConnectionError:
        logs.get_logger("t").exception("daemon_crashed")
    (line,) = lines(stream)
    assert "k3y-k3y-k3y" not in stream.getvalue()
    exception = line["exception"]
    assert isinstance(exception, list)
    assert exception[0]["exc_type"] == "ConnectionError"
    assert exception[0]["frames"]


def test_text_format_is_logfmt_with_the_event_first(stream: io.StringIO) -> None:
    """Text lines start with timestamp, level, event and component as key=value."""
    logs.configure("info", "text", stream=stream)
    logs.get_logger("daemon").info("daemon_started", http="127.0.0.1:8080", startup_ms=812.5)
    line = stream.getvalue().strip()
    assert line.startswith("timestamp=")
    assert " level=info event=daemon_started component=daemon " in line
    assert line.endswith("http=127.0.0.1:8080 startup_ms=812.5")


def test_configure_keeps_other_handlers() -> None:
    """Configuring twice replaces only our own handler, never the host application's."""
    foreign = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(foreign)
    try:
        logs.configure("info", "text")
        logs.configure("info", "json")
        ours = [h for h in root.handlers if h.get_name() == "vodarchiver"]
        assert len(ours) == 1
        assert foreign in root.handlers
    finally:
        root.removeHandler(foreign)
