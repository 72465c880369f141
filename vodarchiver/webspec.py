"""Route declarations: each route states its parameters and body once, for validation and OpenAPI.

An `Endpoint` names its path, methods, handler, parameters (`Param`: name, where it is, type,
range or pattern, whether it is required), its JSON body fields and its answers. `Endpoint.route()`
makes the starlette `Route` that validates a request against the declaration before the handler
runs: anything the declaration does not allow is a 400 (413 for an oversized body) with
`{"error": "<parameter>: <why>", "parameter": "<parameter>"}`, never a 500. `openapi.document()`
turns the same declarations into `/openapi.json`, and the fuzzer in the tests reads that document,
so a parameter declared wrongly is found there.

The handler reads the validated, typed values from `request.state.params` (a dict by parameter
name; an optional parameter that is absent or empty is missing from it) and the JSON body from
`request.state.body` (a dict, or None for an empty body).

Adding a route (for example an operator action) takes one declaration:

    Endpoint(
        "/admin/vods/{vod_id}/priority", ("POST",), api.priority_vod,
        summary="Set a VOD's queue priority",
        params=(VOD_ID,),
        body=(Param("priority", "integer", "body", required=True, minimum=-1000, maximum=1000),),
        responses={200: "the VOD's new state", 404: "no such VOD", 409: "not in a state for it"},
    )

listed in `web.build_app` (or passed to it in `extra`). Every route under `/admin/` is guarded by
`webguard` (token, session or loopback) without anything more to declare; `admin=True` is set from
the path and only documents the security requirement in OpenAPI.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Kind = Literal["string", "integer", "number", "boolean"]
Location = Literal["path", "query", "body"]
Handler = Callable[[Request], Awaitable[Response]]

# Control characters never belong in an id, a name or a cursor, and NUL is refused by PostgreSQL
# with an error that would otherwise surface as a 500; nor do lone surrogates (JSON's `\ud800`),
# which neither PostgreSQL nor a JSON answer can encode.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")
# Decimal notation only: float() would also take "inf", "nan", "1_0" and surrounding spaces.
_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(?:e[+-]?[0-9]{1,3})?",
                     re.IGNORECASE)  # fmt: skip
MAX_BODY_BYTES = 64 * 1024
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BadInput(ValueError):
    """A request parameter the declaration does not allow; `status` is the 4xx to answer."""

    def __init__(self, parameter: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.status = status


def error_response(exc: BadInput) -> JSONResponse:
    """The JSON answer to bad input: the message and the parameter it is about."""
    return JSONResponse({"error": str(exc), "parameter": exc.parameter}, exc.status)


@dataclass(frozen=True)
class Param:
    """One parameter of a route: a path segment, a query parameter or a JSON body field."""

    name: str
    kind: Kind = "string"
    location: Location = "query"
    required: bool = False
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None  # anchored with ^...$, valid for Python and JSON Schema alike
    max_length: int = 256
    printable: bool = False  # text shown to people: no format or separator characters either
    enum: tuple[str, ...] | None = None
    default: Any = None

    def parse(self, raw: str) -> Any:
        """A path or query value, as text, to its typed value; BadInput when not allowed."""
        if CONTROL_CHARS.search(raw):
            raise BadInput(self.name, "control characters are not allowed")
        if len(raw) > self.max_length:
            raise BadInput(self.name, f"at most {self.max_length} characters")
        if self.kind == "integer":
            if not _INTEGER.fullmatch(raw):
                raise BadInput(self.name, "must be a whole number")
            return self._in_range(int(raw))
        if self.kind == "number":
            if not _NUMBER.fullmatch(raw):  # also refuses inf, nan and hex floats
                raise BadInput(self.name, "must be a finite decimal number")
            return self._in_range(float(raw))
        if self.kind == "boolean":
            if raw not in ("true", "false"):
                raise BadInput(self.name, "must be true or false")
            return raw == "true"
        return self._string(raw)

    def check(self, value: Any) -> Any:
        """A JSON body value against the declaration; BadInput when not allowed."""
        if self.kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadInput(self.name, "must be a whole number")
            return self._in_range(value)
        if self.kind == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value):
                raise BadInput(self.name, "must be a finite number")
            return self._in_range(float(value))
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise BadInput(self.name, "must be true or false")
            return value
        if not isinstance(value, str):
            raise BadInput(self.name, "must be a string")
        if CONTROL_CHARS.search(value):
            raise BadInput(self.name, "control characters are not allowed")
        if len(value) > self.max_length:
            raise BadInput(self.name, f"at most {self.max_length} characters")
        return self._string(value)

    def _in_range(self, value: float) -> Any:
        if self.minimum is not None and value < self.minimum:
            raise BadInput(self.name, f"must be at least {_show(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise BadInput(self.name, f"must be at most {_show(self.maximum)}")
        return value

    def _string(self, value: str) -> str:
        if self.printable and not value.isprintable():
            raise BadInput(self.name, "must be printable text")
        if self.enum is not None and value not in self.enum:
            raise BadInput(self.name, f"must be one of {', '.join(self.enum)}")
        if self.pattern is not None and not re.search(self.pattern, value):
            raise BadInput(self.name, f"must match {self.pattern}")
        return value

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the value."""
        out: dict[str, Any] = {"type": self.kind}
        if self.kind == "string":
            out["maxLength"] = self.max_length
            if self.pattern is not None:
                out["pattern"] = self.pattern
            if self.enum is not None:
                out["enum"] = list(self.enum)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.default is not None:
            out["default"] = self.default
        return out


def shown_name(name: str) -> str:
    """An undeclared name as an error may echo it: printable ASCII, at most 40 characters."""
    text = name.encode("ascii", "backslashreplace").decode("ascii")[:40]
    return "".join(c if c.isprintable() else "?" for c in text)


def _show(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


@dataclass(frozen=True)
class Endpoint:
    """A route's declaration: where, how, what it takes and what it answers."""

    path: str
    methods: tuple[str, ...]
    handler: Handler
    summary: str
    params: tuple[Param, ...] = ()
    body: tuple[Param, ...] | None = None  # JSON object fields; None: no body expected
    form: bool = False  # the body may also be an urlencoded form (only POST /login)
    responses: Mapping[int, str] = field(default_factory=lambda: {200: "OK"})
    media_type: str = "application/json"  # of the 200 answer
    tags: tuple[str, ...] = ()

    @property
    def admin(self) -> bool:
        """Whether webguard requires the admin credentials for it."""
        return self.path == "/admin" or self.path.startswith("/admin/")

    @property
    def name(self) -> str:
        """A stable operation id, e.g. `post_admin_vods_vod_id_cancel`."""
        words = re.sub(r"[^a-z0-9]+", "_", self.path.lower()).strip("_") or "root"
        return f"{self.methods[0].lower()}_{words}"

    def parse_params(self, request: Request) -> dict[str, Any]:
        """The declared path and query parameters, validated and typed."""
        values: dict[str, Any] = {}
        query = request.query_params
        for param in self.params:
            if param.location == "path":
                values[param.name] = param.parse(str(request.path_params[param.name]))
                continue
            given = query.getlist(param.name)
            if len(given) > 1:
                raise BadInput(param.name, "given more than once")
            if not given or given[0] == "":
                if param.required:
                    raise BadInput(param.name, "is required")
                continue
            values[param.name] = param.parse(given[0])
        return values

    async def parse_body(self, request: Request) -> dict[str, Any] | None:
        """The declared body fields (None for an empty body); BadInput when malformed."""
        if request.method not in MUTATING:
            return None
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise BadInput("body", f"at most {MAX_BODY_BYTES} bytes", 413)
        if not raw.strip():
            if self.body is not None and any(p.required for p in self.body):
                raise BadInput("body", "is required")
            return None
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if self.form and media == "application/x-www-form-urlencoded":
            doc: Any = _form(raw)
        else:
            try:
                doc = json.loads(raw)
            except (UnicodeDecodeError, ValueError):  # JSONDecodeError, and a nesting too deep
                raise BadInput("body", "is not valid JSON") from None
            except RecursionError:
                raise BadInput("body", "is nested too deeply") from None
        if not isinstance(doc, dict):
            raise BadInput("body", "must be a JSON object")
        return self._fields(doc)

    def _fields(self, doc: dict[str, Any]) -> dict[str, Any]:
        declared = {p.name: p for p in self.body or ()}
        for key in doc:
            if key not in declared:
                raise BadInput(shown_name(key), "is not a field of this body")
        out: dict[str, Any] = {}
        for name, param in declared.items():
            if name in doc and doc[name] is not None:
                out[name] = param.check(doc[name])
            elif param.required:
                raise BadInput(name, "is required")
        return out

    def route(self) -> Route:
        """The starlette route: validation first, then the handler."""
        handler = self.handler

        async def validated(request: Request) -> Response:
            try:
                request.state.params = self.parse_params(request)
                request.state.body = await self.parse_body(request)
            except BadInput as exc:
                return error_response(exc)
            return await handler(request)

        return Route(self.path, validated, methods=list(self.methods), name=self.name)


def _form(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise BadInput("body", "is not a valid urlencoded form") from None
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise BadInput(shown_name(key), "given more than once")
        out[key] = value
    return out


# Parameters several routes share.
VOD_ID = Param(
    "vod_id", location="path", required=True, pattern="^[A-Za-z0-9_-]{1,32}$", max_length=32,
    description="The Twitch VOD id (Twitch's are digits; letters, `_` and `-` are tolerated).",
)  # fmt: skip
