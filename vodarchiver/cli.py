"""The command line: `vodarchiver [run | migrate | config | version]`. Nothing else lives here.

Exit codes: 0 done or stopped by a signal; 1 a part of the daemon failed; 2 the configuration
or the environment is wrong (the message names the variable). No traceback for the expected ones.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from vodarchiver import __version__, logs
from vodarchiver.app import migrate_only, run_daemon
from vodarchiver.config import Settings, load_settings
from vodarchiver.errors import ConfigError, PermanentError, StartupError, TransientError

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
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
    return parser


def _print_config(settings: Settings) -> None:
    width = max(len(name) for name in settings.describe())
    for name, value in settings.describe().items():
        print(f"{name:<{width}}  {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vodarchiver` console script and `python -m vodarchiver`."""
    args = _parser().parse_args(argv)
    command = args.command or "run"
    if command == "version":
        print(f"vodarchiver {__version__}")
        return 0
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"vodarchiver: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(settings.log_level, settings.log_format)
    logs.register_secrets(settings.secret_values())
    log = logs.get_logger("daemon")
    if settings.unknown_env_file_keys:
        log.warning(
            "env_file_unknown_keys", env_file=str(settings.env_file),
            keys=list(settings.unknown_env_file_keys),
        )  # fmt: skip
    if command == "config":
        _print_config(settings)
        return 0
    try:
        if command == "migrate":
            return asyncio.run(migrate_only(settings))
        return asyncio.run(run_daemon(settings))
    except StartupError as exc:
        # An expected refusal: one line naming the variable, deliberately without a traceback.
        log.error("startup_failed", variable=exc.variable, error=str(exc))  # noqa: TRY400
        return EXIT_CONFIG
    except (PermanentError, TransientError) as exc:
        log.error("daemon_failed", error=str(exc), kind=exc.__class__.__name__)  # noqa: TRY400
        return EXIT_FAILED
    except KeyboardInterrupt:  # a signal before the daemon installed its own handlers
        return 130
    except Exception:
        log.exception("daemon_crashed")
        return EXIT_FAILED
