"""`vodarchiver auth youtube`'s last step: store the refresh token, directly or through the daemon.

With the embedded database, only the process holding DATA_DIR's lock can open it: while the
daemon runs, the command hands the token to it over HTTP (`POST /admin/youtube/token` on
HTTP_ADDR, with `Authorization: Bearer ADMIN_TOKEN` when that is set), and the daemon stores it
sealed as a new generation, which its upload stage notices without a restart. Otherwise the
command opens the database itself, as before.
"""

from __future__ import annotations

import httpx

from vodarchiver.config import Settings
from vodarchiver.db.embedded import held_by_another
from vodarchiver.errors import EXIT_FAILED, EXIT_OK, StartupError
from vodarchiver.logs import get_logger

TIMEOUT_S = 15.0


async def store_token(settings: Settings, refresh_token: str) -> int:
    """Store the token; through the running daemon when it holds the embedded database."""
    if settings.database_url is None and held_by_another(settings.data_dir):
        return await store_through_daemon(settings, refresh_token)
    from vodarchiver.app import store_youtube_token  # noqa: PLC0415 - the daemon's wiring

    return await store_youtube_token(settings, refresh_token)


def daemon_url(settings: Settings) -> str:
    """The daemon's base URL from HTTP_ADDR (a wildcard address is reached on loopback)."""
    host = settings.http_addr.host
    if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard bind, reached through loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_addr.port}"


async def store_through_daemon(settings: Settings, refresh_token: str) -> int:
    """POST the token to the running daemon; exit status."""
    log = get_logger("youtube_auth")
    url = f"{daemon_url(settings)}/admin/youtube/token"
    headers = {}
    admin = settings.admin_token
    if admin is not None and admin.get():
        headers["Authorization"] = f"Bearer {admin.get()}"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            answer = await client.post(url, json={"refresh_token": refresh_token},
                                       headers=headers)  # fmt: skip
    except httpx.HTTPError as exc:
        raise StartupError(
            "HTTP_ADDR",
            f"the daemon holds the embedded database but did not answer at {url} "
            f"({exc.__class__.__name__}); is HTTP_ADDR the daemon's address?",
        ) from None
    if answer.status_code != 200:
        try:
            reason = str(answer.json().get("error", ""))[:200]
        except ValueError:
            reason = ""
        log.error("youtube_token_not_stored", via="daemon", status=answer.status_code,
                  reason=reason)  # fmt: skip
        return EXIT_FAILED
    log.info("youtube_token_stored", source="vodarchiver auth youtube", via="daemon",
             generation=answer.json().get("generation"))  # fmt: skip
    return EXIT_OK
