"""The command line: `vodarchiver [run | migrate | config | version | auth youtube |
chat export | vods ... | notify test | retention [--dry-run] | healthcheck | backup | restore]`.
Nothing else lives here.

Exit codes: 0 done or stopped by a signal; 1 a part of the daemon failed; 2 the configuration
or the environment is wrong (the message names the variable); 130 `migrate` interrupted. No
traceback for the expected ones.

SIGTERM and SIGINT are caught from the first moment `main()` runs, before the heavy imports. A
signal that arrives before the daemon's event loop handles signals itself is only recorded (a
handler that raised could land inside asyncio's own set-up); the daemon acts on it as soon as its
handlers are in place, so a signal at any point of start-up is a clean stop with exit 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from vodarchiver.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

if TYPE_CHECKING:
    from vodarchiver.config import Settings

_early_signals: list[int] = []


def _early_signal(signum: int, frame: FrameType | None) -> None:
    _early_signals.append(signum)


_VOD_ACTIONS = (
    ("cancel", "stop it now (reversible with restore)"),
    ("restore", "back to the queue: canceled, skipped, failed or gone"),
    ("retry", "a VOD waiting for its next attempt is due now"),
    ("reprocess", "download and publish again as new videos"),
    ("skip", "never archive it (not a failure)"),
    ("priority", "set its priority (the queue order uses it first)"),
)


def _parser() -> argparse.ArgumentParser:
    from vodarchiver import __version__  # noqa: PLC0415 - light, and after the signal handlers
    from vodarchiver.chat_export import FORMATS  # noqa: PLC0415 - light as well

    parser = argparse.ArgumentParser(
        prog="vodarchiver",
        description="Archive a streamer's Twitch VODs to YouTube before Twitch deletes them.",
        epilog="Settings come from the environment and .env; see CONFIG.md.",
    )
    parser.add_argument("--version", action="version", version=f"vodarchiver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the daemon (the default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    sub.add_parser("config", help="print the effective settings, secrets redacted")
    sub.add_parser("version", help="print the version")
    auth = sub.add_parser("auth", help="store credentials: `auth youtube`")
    auth.add_argument("provider", choices=["youtube"], help="whose credentials")
    auth.add_argument(
        "--token-stdin",
        action="store_true",
        help="read a refresh token from standard input instead of the consent flow",
    )
    auth.add_argument("--no-browser", action="store_true",
                      help="print the consent URL without opening a browser")  # fmt: skip
    chat = sub.add_parser("chat", help="recorded live chat")
    chat_sub = chat.add_subparsers(dest="chat_command", metavar="CHAT_COMMAND", required=True)
    export = chat_sub.add_parser("export", help="write a VOD's chat to stdout")
    export.add_argument("vod_id", metavar="VOD_ID", help="the VOD's Twitch id")
    export.add_argument("--format", choices=FORMATS, default="json")
    sub.add_parser("healthcheck", help="exit 0 when the daemon at HTTP_ADDR answers /healthz")
    backup = sub.add_parser("backup", help="dump the database and list DATA_DIR's files")
    backup.add_argument("directory", metavar="DIR", help="a new or empty directory to write")
    restore = sub.add_parser("restore", help="load a backup into an empty database")
    restore.add_argument("directory", metavar="DIR", help="a directory `backup` wrote")
    restore.add_argument(
        "--ignore-files", action="store_true", help="restore though DATA_DIR differs from it"
    )
    vods = sub.add_parser("vods", help="list, show and act on VODs through the running daemon")
    vods.add_argument("--url", help="the daemon's base URL (default: from HTTP_ADDR)")
    vods_sub = vods.add_subparsers(dest="vods_command", metavar="VODS_COMMAND", required=True)
    listing = vods_sub.add_parser("list", help="VODs in queue order")
    listing.add_argument("--channel")
    listing.add_argument("--state")
    listing.add_argument("--limit", type=int, default=50)
    vods_sub.add_parser("show", help="one VOD").add_argument("vod_id", metavar="VOD_ID")
    for verb, text in _VOD_ACTIONS:
        action = vods_sub.add_parser(verb, help=text)
        action.add_argument("vod_id", metavar="VOD_ID")
        if verb == "priority":
            action.add_argument("priority", type=int, metavar="N")
        if verb == "reprocess":
            action.add_argument(
                "--delete-old",
                action="store_true",
                help="delete the old videos once every new part is confirmed",
            )
    notify = sub.add_parser("notify", help="notifications: `notify test`")
    notify.add_argument("notify_command", choices=["test"],
                        help="send a test message to every NOTIFY_URLS target")  # fmt: skip
    keep = sub.add_parser("retention", help="apply the retention rules to DATA_DIR now")
    keep.add_argument("--dry-run", action="store_true",
                      help="only list what would go and the space it frees")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vodarchiver` console script and `python -m vodarchiver`."""
    previous = {sig: signal.signal(sig, _early_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        args = _parser().parse_args(argv)
        return _dispatch(args.command or "run", args)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _dispatch(command: str, args: argparse.Namespace) -> int:
    # Imported here, after the signal handlers: loading them takes most of start-up.

    from vodarchiver import __version__, logs  # noqa: PLC0415
    from vodarchiver.config import load_settings  # noqa: PLC0415
    from vodarchiver.errors import (  # noqa: PLC0415
        ConfigError,
        PermanentError,
        StartupError,
        TransientError,
    )

    if command == "version":
        print(f"vodarchiver {__version__}")
        return EXIT_OK
    if _early_signals and command != "run":
        return EXIT_INTERRUPTED
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"vodarchiver: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(settings.log_level, settings.log_format)
    logs.register_secrets(settings.secret_values())
    log = logs.get_logger("daemon")
    log.debug("settings_loaded", command=command)
    if settings.unknown_env_file_keys:
        log.warning(
            "env_file_unknown_keys", env_file=str(settings.env_file),
            keys=list(settings.unknown_env_file_keys),
        )  # fmt: skip
    if command == "healthcheck":
        return _healthcheck(settings)
    if command == "config":
        width = max(len(name) for name in settings.describe())
        for name, value in settings.describe().items():
            print(f"{name:<{width}}  {value}")
        return EXIT_OK
    try:
        return _run_command(command, args, settings)
    except StartupError as exc:
        # An expected refusal: one line naming the variable, deliberately without a traceback.
        log.error("startup_failed", variable=exc.variable, error=str(exc))  # noqa: TRY400
        return EXIT_CONFIG
    except (PermanentError, TransientError) as exc:
        log.error("daemon_failed", error=str(exc), kind=exc.__class__.__name__)  # noqa: TRY400
        return EXIT_FAILED
    except Exception:
        log.exception("daemon_crashed")
        return EXIT_FAILED


def _run_command(command: str, args: argparse.Namespace, settings: Settings) -> int:
    """Run `migrate`, `auth youtube`, `chat export`, `notify test`, `retention` or the daemon."""
    import asyncio  # noqa: PLC0415

    from vodarchiver.app import migrate_only, run_daemon  # noqa: PLC0415

    if command == "migrate":
        return asyncio.run(migrate_only(settings, _early_signals))
    if command == "auth":
        token = _refresh_token(args, settings)
        if token is None:
            return EXIT_CONFIG
        from vodarchiver.youtube.token_command import store_token  # noqa: PLC0415

        return asyncio.run(store_token(settings, token))
    if command == "chat":
        from vodarchiver.chat_command import export_chat  # noqa: PLC0415

        return asyncio.run(export_chat(settings, args.vod_id, args.format))
    if command in ("backup", "restore"):
        return asyncio.run(_backup_command(command, args, settings))
    if command == "vods":
        from vodarchiver.vods_command import run_vods  # noqa: PLC0415

        return run_vods(
            settings, args.vods_command, getattr(args, "vod_id", None), url=args.url,
            priority=getattr(args, "priority", None),
            delete_old=getattr(args, "delete_old", False), channel=getattr(args, "channel", None),
            state=getattr(args, "state", None), limit=getattr(args, "limit", 50),
        )  # fmt: skip
    if command == "notify":
        from vodarchiver.notify_command import notify_test  # noqa: PLC0415

        return asyncio.run(notify_test(settings))
    if command == "retention":
        from vodarchiver.retention_command import retention  # noqa: PLC0415

        return asyncio.run(retention(settings, dry_run=args.dry_run))
    return asyncio.run(run_daemon(settings, _early_signals))


def _refresh_token(args: argparse.Namespace, settings: Settings) -> str | None:
    """The token to store: from standard input, or from the consent flow."""
    if args.token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            print("vodarchiver: no refresh token on standard input", file=sys.stderr)
            return None
        return token
    from vodarchiver.youtube.consent import run_consent_flow  # noqa: PLC0415

    return run_consent_flow(settings, open_browser=not args.no_browser)


def _healthcheck(settings: Settings) -> int:
    """Container healthcheck: 0 when /healthz at HTTP_ADDR answers 200, else 1."""
    from vodarchiver.selfcheck import probe  # noqa: PLC0415

    try:
        healthy, detail = probe(settings.http_addr)
    except ValueError as exc:
        print(f"vodarchiver: HTTP_ADDR: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(detail, file=sys.stdout if healthy else sys.stderr)
    return EXIT_OK if healthy else EXIT_FAILED


async def _backup_command(command: str, args: argparse.Namespace, settings: Settings) -> int:
    """`backup DIR` or `restore DIR`; a BackupError is one line on stderr and exit 1."""
    from pathlib import Path  # noqa: PLC0415

    from vodarchiver import backup  # noqa: PLC0415
    from vodarchiver.errors import BackupError  # noqa: PLC0415

    directory = Path(args.directory)
    try:
        if command == "backup":
            manifest = await backup.backup(settings, directory)
            size, files = manifest["database"]["size"], len(manifest["files"])
            print(f"backup written to {directory}: database ({size} bytes), {files} files listed")
        else:
            ignored = await backup.restore(settings, directory, ignore_files=args.ignore_files)
            note = f"{len(ignored)} file problems ignored" if ignored else "every file matches"
            print(f"restored {directory}; {note}")
    except BackupError as exc:
        print(f"vodarchiver: {command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
