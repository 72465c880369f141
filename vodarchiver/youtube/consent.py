"""`vodarchiver auth youtube`: the installed-app consent flow that yields a refresh token.

google-auth-oauthlib's InstalledAppFlow opens a one-shot redirect server on 127.0.0.1 and prints
Google's consent URL (opened in a browser when there is one). `access_type=offline` and
`prompt=consent` make Google return a refresh token even for an account that consented before.
The endpoints are GOOGLE_AUTH_URL and GOOGLE_TOKEN_URL, so the flow can be pointed elsewhere.
"""

from __future__ import annotations

import io
import logging
import sys

from vodarchiver.config import Settings
from vodarchiver.errors import StartupError

SCOPES = ["https://www.googleapis.com/auth/youtube.upload",
          "https://www.googleapis.com/auth/youtube"]  # fmt: skip


def run_consent_flow(settings: Settings, *, open_browser: bool) -> str:
    """Run the consent flow; the refresh token Google gave. Blocks until the user consents."""
    from google_auth_oauthlib.flow import InstalledAppFlow  # noqa: PLC0415 - heavy, CLI only

    secret = settings.yt_client_secret
    if not settings.yt_client_id or secret is None or not secret.get():
        raise StartupError("YT_CLIENT_ID", "set YT_CLIENT_ID and YT_CLIENT_SECRET first")
    config = {"installed": {
        "client_id": settings.yt_client_id, "client_secret": secret.get(),
        "auth_uri": settings.google_auth_url, "token_uri": settings.google_token_url,
        "redirect_uris": ["http://localhost"],
    }}  # fmt: skip
    # requests-oauthlib logs the tokens it obtains at debug level, and the redirect server logs
    # the authorization code: neither may reach our log.
    for name in ("requests_oauthlib", "oauthlib", "google_auth_oauthlib"):
        logging.getLogger(name).setLevel(logging.WARNING)
    captions = ["https://www.googleapis.com/auth/youtube.force-ssl"]  # captions.insert needs it
    scopes = SCOPES + (captions if settings.youtube_chat_captions else [])
    flow = InstalledAppFlow.from_client_config(config, scopes=scopes)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # the URL must show before the flow blocks
    credentials = flow.run_local_server(
        host="localhost", port=0, open_browser=open_browser,
        authorization_prompt_message="Open this URL in a browser and allow access:\n{url}",
        success_message="vodarchiver has its YouTube token; you may close this window.",
        access_type="offline", prompt="consent",
    )  # fmt: skip
    token = getattr(credentials, "refresh_token", None)
    if not token:
        raise StartupError("YT_CLIENT_ID", "Google gave no refresh token (is it a Desktop client?)")
    return str(token)
