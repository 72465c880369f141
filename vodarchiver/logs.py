"""Structured logging: one pipeline for our events and for third-party stdlib loggers.

Every line is an event (a stable snake_case name) with key/value context, written to stderr as
`text` (key=value) or `json`. Every line carries `component`: ours bind it explicitly, foreign
records get it from their logger name. JSON lines are compact and also carry the event as a sentence
under `msg` (`"msg":"twitch app token acquired"`), which is what the runbook's filters look for.
Text lines escape every control character (`\\x1b` stays four visible characters), so a request's
path or header can neither forge a line nor drive the operator's terminal. Context bound with
`bound_contextvars` (such as the request's `corr`) appears on every line written while it is bound.
Registered secret values are replaced by a redaction mark in every string of every line, tracebacks
included, before rendering, and so are the values of credential-like URL parameters (`upload_id=`,
`access_token=`, ...).

Quiet at info: the HTTP libraries' line per request (httpx logs every URL at info) is written
only at debug; a warning about an unreachable database (ours, or the pool's reconnect attempts)
is written once, then again only if it is still happening REPEAT_WINDOW_S later (with
`repeated=n`), never once per retry.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any

import structlog
import structlog.tracebacks
from structlog.contextvars import bound_contextvars, get_contextvars, merge_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

from vodarchiver.values import REDACTED

__all__ = ["bound_contextvars", "configure", "current_corr", "get_logger", "register_secrets"]

_secrets: set[str] = set()
_HANDLER_NAME = "vodarchiver"

# Loggers of dependencies, mapped to the component they speak for.
_FOREIGN_COMPONENTS: Mapping[str, str] = {
    "uvicorn": "http",
    "psycopg": "database",
    "asyncio": "runtime",
}


# Query parameters whose value is a credential or a capability (a resumable upload's id is).
_URL_SECRET = re.compile(
    r"((?:upload_id|access_token|refresh_token|id_token|client_secret|token|code|key|sig|"
    r"signature|password)=)[^&\s\"'#]+",
    re.IGNORECASE,
)
_REQUEST_LOGGERS = ("httpx", "httpcore", "urllib3", "requests")
REPEAT_WINDOW_S = 600.0


def register_secrets(values: Iterable[str]) -> None:
    """Add values that must never appear in a log line."""
    _secrets.update(v for v in values if v)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by the redaction mark."""
    result: str = _scrub(text)
    return result


def forget_secrets() -> None:
    """Drop every registered secret (for tests that register their own)."""
    _secrets.clear()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if "=" in value:
            value = _URL_SECRET.sub(rf"\1{REDACTED}", value)
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, BaseException):
        return _scrub(repr(value))
    return value


def _redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return {k: _scrub(v) for k, v in event_dict.items()}


class _QuietFilter(logging.Filter):
    """Request lines of HTTP libraries only at debug; database outages once per change."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in _REQUEST_LOGGERS and record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self._level <= logging.DEBUG
        if record.levelno < logging.WARNING:
            return True
        key = self._outage_key(record)
        if key is None:
            return True
        now = time.monotonic()
        first, repeats = self._seen.get(key, (0.0, -1))
        if repeats >= 0 and now - first < REPEAT_WINDOW_S:
            self._seen[key] = (first, repeats + 1)
            return False
        self._seen[key] = (now, 0)
        if repeats > 0 and isinstance(record.msg, dict):
            record.msg = {**record.msg, "repeated": repeats}
        return True

    @staticmethod
    def _outage_key(record: logging.LogRecord) -> tuple[str, str] | None:
        """(who, what) when the line reports an unreachable database, else None."""
        if isinstance(record.msg, dict):
            text = " ".join(str(record.msg.get(k, "")) for k in ("reason", "error"))
            if "database unavailable" in text:
                return (str(record.msg.get("component")), str(record.msg.get("event")))
            return None
        if record.name.startswith("psycopg.pool"):
            # The pool's reconnect attempts: one line per outage, whatever the attempt number.
            return (record.name, re.sub(r"\d+", "#", str(record.msg))[:80])
        return None


def _foreign_component(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    if "component" not in event_dict and record is not None:
        root = record.name.split(".", 1)[0]
        event_dict["component"] = _FOREIGN_COMPONENTS.get(root, root)
        event_dict.setdefault("logger", record.name)
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
    return event_dict


_SNAKE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
# Quoted when it holds a space, `=`, a quote, a backslash, a C0 or C1 control character, DEL, or
# the Unicode line and paragraph separators; inside quotes each of those is escaped.


def _add_msg(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event = event_dict.get("event")
    if isinstance(event, str) and "msg" not in event_dict:
        event_dict["msg"] = event.replace("_", " ") if _SNAKE.fullmatch(event) else event
    return event_dict


_NEEDS_QUOTES = re.compile(r'[\s="\\]|[\x00-\x1f\x7f-\x9f\u2028\u2029]')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TO_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029]')


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    known = _ESCAPES.get(char)
    if known is not None:
        return known
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def logfmt_value(value: object) -> str:
    r"""One logfmt value: bare when plain, else quoted with `\`, `\"`, `\n`, `\x1b`, `\u2028`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + _TO_ESCAPE.sub(_escaped, text) + '"'


class _Logfmt:
    r"""key=value lines. Unlike structlog's renderer, a value holding a backslash or a control
    character is always quoted and escaped, so `\x1b` read back is ESC and `\\x1b` is text."""

    _FIRST = ("timestamp", "level", "event", "component")

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> str:
        keys = [k for k in self._FIRST if k in event_dict]
        keys += [k for k in event_dict if k not in self._FIRST]
        return " ".join(f"{_TO_ESCAPE.sub(_escaped, str(k))}={logfmt_value(event_dict[k])}"
                        for k in keys)  # fmt: skip


def _default_component(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("component", "vodarchiver")
    return event_dict


def configure(level: str = "info", fmt: str = "text", *, stream: IO[str] | None = None) -> None:
    """Route our events and stdlib records through one formatter on `stream` (stderr)."""
    shared: list[Processor] = [
        merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _default_component,
    ]
    renderer: Processor
    if fmt == "json":
        # Never the frames' local variables: they hold connection strings, and structlog cuts
        # long values, so a cut secret would no longer match the scrubber.
        tail += [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            _redact,
            _add_msg,
        ]
        # Compact separators: the runbook filters on the literal `"msg":"..."`.
        renderer = structlog.processors.JSONRenderer(separators=(",", ":"))
    else:
        tail += [structlog.processors.format_exc_info, _redact]
        renderer = _Logfmt()

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _foreign_component],
        processors=[*tail, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    numeric = logging.getLevelNamesMapping()[level.upper()]
    handler.addFilter(_QuietFilter(numeric))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:  # ours, from an earlier configure(): replace it
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn's access log is replaced by our own request event, which carries `corr`.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.filter_by_level,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(component: str) -> structlog.stdlib.BoundLogger:
    """A logger whose every line carries `component`."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("vodarchiver").bind(
        component=component
    )
    return logger


def current_corr() -> str | None:
    """The correlation id bound for the current request or VOD, if any."""
    corr = get_contextvars().get("corr")
    return str(corr) if corr is not None else None
