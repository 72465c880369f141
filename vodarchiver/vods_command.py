"""`vodarchiver vods list|show|cancel|restore|retry|reprocess|skip|priority`, through the daemon.

The commands talk to the running daemon's HTTP API (HTTP_ADDR, or `--url`), never to PostgreSQL
directly: with the embedded database the daemon holds it, and the actions must stop workers that
run inside the daemon. `ADMIN_TOKEN`, when set, is sent as the bearer token. Exit codes: 0 done,
1 refused (409, with the reason and the actions that would apply) or the daemon unreachable,
2 bad input or no such VOD.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import httpx

from vodarchiver.config import Settings
from vodarchiver.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK

ACTIONS = ("cancel", "restore", "retry", "reprocess", "skip", "priority")


def daemon_url(settings: Settings, override: str | None) -> str:
    """The running daemon's base URL: `--url`, else HTTP_ADDR (a wildcard host means loopback)."""
    if override:
        return override.rstrip("/")
    host = settings.http_addr.host
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - the daemon listens everywhere: use loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_addr.port}"


def _headers(settings: Settings) -> dict[str, str]:
    token = settings.admin_token
    value = token.get() if token is not None else None
    return {"Authorization": f"Bearer {value}"} if value else {}


def run_vods(
    settings: Settings,
    verb: str,
    vod_id: str | None,
    *,
    url: str | None = None,
    priority: int | None = None,
    delete_old: bool = False,
    channel: str | None = None,
    state: str | None = None,
    limit: int = 50,
    out: TextIO = sys.stdout,
) -> int:
    """Run one `vods` verb against the daemon; print its JSON answer; return the exit code."""
    base = daemon_url(settings, url)
    try:
        with httpx.Client(base_url=base, headers=_headers(settings), timeout=30.0) as client:
            if verb == "list":
                params: dict[str, Any] = {"limit": limit}
                params.update({k: v for k, v in (("channel", channel), ("state", state)) if v})
                answer = client.get("/vods", params=params)
            elif verb == "show":
                answer = client.get(f"/vods/{vod_id}")
            else:
                body: dict[str, Any] = {}
                if verb == "priority":
                    body["priority"] = priority
                if verb == "reprocess" and delete_old:
                    body["delete_old"] = True
                answer = client.post(f"/admin/vods/{vod_id}/{verb}", json=body)
    except httpx.HTTPError as exc:
        print(f"vodarchiver: the daemon at {base} does not answer ({exc.__class__.__name__}); "
              "is it running? (--url to name it)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    try:
        doc = answer.json()
    except ValueError:
        doc = {"error": answer.text[:200]}
    print(json.dumps(doc, indent=2, ensure_ascii=False), file=out)
    if answer.status_code == 409:
        allowed = ", ".join(doc.get("allowed") or []) or "none"
        print(f"vodarchiver: refused: {doc.get('error')} (allowed now: {allowed})",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    if answer.status_code in (401, 403):
        print(f"vodarchiver: the daemon refused the request ({answer.status_code}); "
              "set ADMIN_TOKEN to the daemon's", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    if answer.status_code >= 400:
        return EXIT_CONFIG if answer.status_code < 500 else EXIT_FAILED
    return EXIT_OK
