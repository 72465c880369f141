"""The exception tree of vodarchiver. Every error we raise derives from VodarchiverError.

    VodarchiverError
    ├── ConfigError            settings are invalid; lists every problem; exit code 2
    ├── StartupError           the environment refuses us at start-up (port taken, database
    │                          unreachable); names the variable to fix; exit code 2
    ├── TransientError         retry later; nothing is wrong with the item itself
    │   ├── DatabaseUnavailable
    │   ├── HelixUnavailable   Helix or the token server failed even after our retries
    │   ├── LeaseLost          another replica took over a channel or an upload of ours
    │   ├── ChatLinkLost       the IRC connection broke, timed out or was closed by Twitch
    │   ├── ChatLoginFailed    Twitch refused the chat login (token): retried slowly
    │   ├── YouTubeUnavailable YouTube or Google's token server failed (5xx, network,
    │   │                      rateLimitExceeded); resume from what YouTube holds
    │   ├── UploadSessionExpired
    │   │                      the resumable session is gone (404/410): look for our marker,
    │   │                      then start a new session
    │   └── GqlUnavailable     Twitch GQL failed (429, 5xx, network, not JSON): back off
    ├── UploadsPaused          uploads must wait for something outside the VOD; not its failure
    │   ├── QuotaExhausted     quotaExceeded, or the planner cannot afford the call: until the
    │   │                      next Pacific midnight
    │   ├── UploadLimitReached uploadLimitExceeded: for UPLOAD_LIMIT_COOLDOWN
    │   └── YouTubeAuthRevoked invalid_grant or no credentials: until a new token is stored
    └── PermanentError         stop and say why; retrying will not help
        ├── MigrationError     the schema cannot be brought up to date
        ├── DataRejected       PostgreSQL refused a value (range, NUL byte, duplicate): skip it
        ├── EmbeddedPostgresError
        │                      the private PostgreSQL server could not be prepared or started
        ├── TwitchCredentialsError
        │                      Twitch refused TWITCH_CLIENT_ID/TWITCH_CLIENT_SECRET
        ├── HelixRequestError  Helix refused the request itself (a 4xx other than 401/429)
        ├── HelixDataError     an answer or an item lacks the documented shape (skip it)
        ├── YouTubeRequestError
        │                      YouTube refused the request itself (invalidTitle, a 4xx we
        │                      caused): retrying it unchanged is pointless
        ├── IrcLineRejected    a chat line that is not IRC, is oversized, or lacks an id (skip it)
        ├── GqlRefused         Twitch GQL refused what we asked (integrity check, comments
        │                      null, video null, an answer without the documented shape)
        └── BackupError        a backup or restore cannot be made or trusted (a checksum, a
                               non-empty target, pg_dump/pg_restore failed or is missing)

Third-party exceptions are translated at the adapter boundary (`raise ... from exc`), so code
above the adapters only ever handles these.
"""

from __future__ import annotations

from collections.abc import Sequence

# Exit statuses of the `vodarchiver` command.
EXIT_OK = 0  # done, or stopped by a signal
EXIT_FAILED = 1  # a part of the daemon failed (a supervised task died, a permanent error)
EXIT_CONFIG = 2  # the configuration or the environment is wrong; the message names the variable
EXIT_INTERRUPTED = 130  # `migrate` stopped by a signal before it finished


class VodarchiverError(Exception):
    """Root of every error vodarchiver raises on purpose."""


class ConfigError(VodarchiverError):
    """One or more settings are invalid. `problems` holds one line per bad variable."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class StartupError(VodarchiverError):
    """The daemon cannot start in this environment; the message names the variable to fix."""

    def __init__(self, variable: str, message: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {message}")


class TransientError(VodarchiverError):
    """A failure that may go away by itself; the caller retries later."""


class DatabaseUnavailable(TransientError):
    """PostgreSQL did not answer in time or the connection broke."""


class HelixUnavailable(TransientError):
    """Helix kept failing (5xx, network, timeouts, 429s) through every retry."""


class LeaseLost(TransientError):
    """Another worker took a channel or an upload over (our lease expired while we were slow)."""


class ChatLinkLost(TransientError):
    """The chat connection broke, went silent past the keepalive, or Twitch closed it."""


class ChatLoginFailed(TransientError):
    """Twitch refused the chat login (a bad or expired token); retried slowly, never logged."""


class PermanentError(VodarchiverError):
    """A failure that retrying will not cure; the caller stops and reports it."""


class MigrationError(PermanentError):
    """The schema cannot be brought up to date (edited or unknown migrations)."""


class EmbeddedPostgresError(PermanentError):
    """The embedded PostgreSQL server could not be prepared or started."""


class DataRejected(PermanentError):
    """PostgreSQL refused the data itself (out of range, a NUL byte, a duplicate key)."""


class TwitchCredentialsError(PermanentError):
    """Twitch's token server refused our client id or secret; the message says Twitch's reason."""


class HelixRequestError(PermanentError):
    """Helix refused the request itself (400, 403, 404 ...); retrying it unchanged is pointless."""

    def __init__(self, status: int, message: str, *, from_helix: bool = False) -> None:
        self.status = status
        self.from_helix = from_helix  # the body was Helix's own error object, not a proxy page
        super().__init__(message)


class HelixDataError(PermanentError):
    """A Helix answer, or one item of it, does not have the documented shape."""


class YouTubeUnavailable(TransientError):
    """YouTube or Google's token server failed (5xx, network, timeouts, rateLimitExceeded)."""


class UploadSessionExpired(TransientError):
    """The resumable upload session answers 404 or 410: it is gone."""


class UploadsPaused(VodarchiverError):
    """Uploads must wait for something outside the VOD (quota, a limit, credentials)."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason  # a stable word for /status and metrics: quota, upload_limit, auth
        super().__init__(message)


class QuotaExhausted(UploadsPaused):
    """The day's quota is spent (quotaExceeded, or the planner cannot afford the call)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="quota")


class UploadLimitReached(UploadsPaused):
    """YouTube's per-channel upload limit (uploadLimitExceeded)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="upload_limit")


class YouTubeAuthRevoked(UploadsPaused):
    """Google refused the refresh token (invalid_grant), or there are no credentials."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="auth")


class YouTubeRequestError(PermanentError):
    """YouTube refused the request itself (invalidTitle, invalidDescription, another 4xx)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


class IrcLineRejected(PermanentError):
    """A chat line we cannot use (not IRC, oversized, no message id): counted, logged, skipped."""


class BackupError(PermanentError):
    """`vodarchiver backup`/`restore` cannot be completed or trusted; the message says why."""


class GqlUnavailable(TransientError):
    """Twitch GQL failed for now (429, 5xx, network, timeout, a non-JSON page): back off."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after_s: float | None = None) -> None:  # fmt: skip
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message)


class GqlRefused(PermanentError):
    """Twitch GQL answered but refused: `reason` is `integrity`, `comments_null`, `video_null`
    or `malformed` (the answer lacks the documented shape). Never a failure of the VOD."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
