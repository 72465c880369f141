"""The OpenAPI 3.1 document of the HTTP API, built from the routes' own declarations (`webspec`).

Nothing here is written by hand per route: paths, parameters, bodies, answers and the admin
security requirement all come from each `Endpoint`, so the document cannot drift from what the
server validates. Served at `GET /openapi.json`; the tests' fuzzer reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vodarchiver.webspec import Endpoint

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What is wrong, naming the parameter."},
        "parameter": {"type": "string", "description": "The parameter or header at fault."},
    },
    "required": ["error"],
}
# Answers any route may give, decided before routing by webguard or by the declarations.
_COMMON = {
    400: "A parameter, the body or the Host header is not allowed (`parameter` names it).",
    403: "A cross-site mutating request, a missing CSRF token, or a non-loopback client.",
    415: "A mutating request whose body is not JSON (or, for /login, an urlencoded form).",
}


def document(endpoints: Iterable[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI document describing `endpoints`."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        item = paths.setdefault(endpoint.path, {})
        for method in endpoint.methods:
            if method == "HEAD":  # implied by GET in OpenAPI tooling; described once
                continue
            item[method.lower()] = _operation(endpoint, method)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "vodarchiver's HTTP API. Routes under /admin/ need "
            "`Authorization: Bearer <ADMIN_TOKEN>` or a session cookie from POST /login "
            "(with `X-CSRF-Token` on mutating requests); without ADMIN_TOKEN, a loopback client.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "vodarchiver_session"},
            },
        },
    }


def _operation(endpoint: Endpoint, method: str) -> dict[str, Any]:
    first = method == endpoint.methods[0]
    op: dict[str, Any] = {
        "operationId": endpoint.name if first else f"{endpoint.name}_{method.lower()}",
        "summary": endpoint.summary,
        "parameters": [
            {
                "name": p.name,
                "in": p.location,
                "required": p.required or p.location == "path",
                "description": p.description,
                "schema": p.schema(),
            }
            for p in endpoint.params
        ],
        "responses": _responses(endpoint),
    }
    if endpoint.tags:
        op["tags"] = list(endpoint.tags)
    if endpoint.admin:
        op["security"] = [{"bearer": []}, {"session": []}]
    if endpoint.body is not None:
        schema = {
            "type": "object",
            "properties": {p.name: p.schema() | _described(p.description) for p in endpoint.body},
            "required": [p.name for p in endpoint.body if p.required],
            "additionalProperties": False,
        }
        content = {"application/json": {"schema": schema}}
        if endpoint.form:
            content["application/x-www-form-urlencoded"] = {"schema": schema}
        op["requestBody"] = {
            "required": any(p.required for p in endpoint.body),
            "content": content,
        }
    return op


def _described(text: str) -> dict[str, str]:
    return {"description": text} if text else {}


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, text in sorted({**_COMMON, **endpoint.responses}.items()):
        if status < 300:
            media = endpoint.media_type
            json_body = media == "application/json"
            schema: dict[str, Any] = {"type": "object" if json_body else "string"}
        else:
            media, schema = "application/json", {"$ref": "#/components/schemas/Error"}
        out[str(status)] = {"description": text, "content": {media: {"schema": schema}}}
    if endpoint.admin:
        out.setdefault("401", {
            "description": "ADMIN_TOKEN is set and neither the token nor a session was given.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        })  # fmt: skip
    return dict(sorted(out.items()))
