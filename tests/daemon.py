"""Runs `vodarchiver` as a real subprocess and follows its JSON log, for acceptance tests.

Tests synchronise on the daemon's own log events (`daemon_started`, ...) instead of sleeping. The
environment is built from scratch, so a DATABASE_URL in the test runner's environment never leaks
into a daemon that is meant to use its embedded database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")


def base_env(**extra: str) -> dict[str, str]:
    """A minimal environment: JSON logs, a free HTTP port, no .env file from the checkout."""
    env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    env.update(
        LOG_FORMAT="json",
        LOG_LEVEL="debug",
        HTTP_ADDR="127.0.0.1:0",
        ENV_FILE=os.devnull,
    )
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


class Daemon:
    """One `vodarchiver` process: start it, read its events, signal it, wait for its exit."""

    def __init__(
        self, env: Mapping[str, str], *, args: tuple[str, ...] = ("run",), cwd: Path | None = None
    ) -> None:
        self.env = dict(env)
        self.args = args
        self.cwd = cwd
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Daemon:
        """Spawn the process and start following its stderr."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vodarchiver", *self.args,
            env=self.env,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").rstrip("\n")
            async with self._changed:
                self.raw.append(text)
                try:
                    event = json.loads(text)
                except json.JSONDecodeError:
                    event = None
                if isinstance(event, dict):
                    self.events.append(event)
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        """Everything the daemon wrote to stderr so far."""
        return "\n".join(self.raw)

    async def wait_for(self, event: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        """The first log event named `event` whose fields match; fails on timeout or exit."""

        def find() -> dict[str, Any] | None:
            for e in self.events:
                if e.get("event") == event and all(e.get(k) == v for k, v in fields.items()):
                    return e
            return None

        async with asyncio.timeout(timeout), self._changed:
            while True:
                found = find()
                if found is not None:
                    return found
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"daemon exited before {event!r}:\n{self.output[-4000:]}")
                await self._changed.wait()

    async def started(self, timeout: float = 30.0) -> str:
        """Wait for `daemon_started`; returns the base URL of its HTTP server."""
        event = await self.wait_for("daemon_started", timeout=timeout)
        return f"http://{event['http']}"

    def send(self, sig: int) -> None:
        """Send a signal to the daemon."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to end and its output to be read; returns the exit status."""
        assert self.proc is not None
        assert self._reader is not None
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await self._reader
        return code

    async def stop(self) -> None:
        """Make sure the process is gone (SIGKILL if it is still running)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


async def get(url: str, timeout: float = 5.0, **kwargs: Any) -> httpx.Response:
    """One GET with a fresh client."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.get(url, **kwargs)


async def poll_status(url: str, want: int, within: float) -> float:
    """Poll `url` until it answers `want`; returns the seconds it took, fails after `within`.

    This is a deadline on an observable condition (what an operator's probe sees), not a sleep
    standing in for synchronisation.
    """
    loop = asyncio.get_running_loop()
    begin = loop.time()
    last: object = None
    async with httpx.AsyncClient(timeout=2.0) as client:
        while loop.time() - begin < within:
            try:
                last = (await client.get(url)).status_code
            except httpx.HTTPError as exc:
                last = exc.__class__.__name__
            if last == want:
                return loop.time() - begin
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer {want} within {within}s (last: {last})")


async def run_until_exit(
    env: Mapping[str, str], *, args: tuple[str, ...] = ("run",), timeout: float = 30.0
) -> tuple[Daemon, int]:
    """Run a daemon that is expected to exit by itself; returns it (for its events) and its status."""
    daemon = await Daemon(env, args=args).start()
    try:
        code = await daemon.wait_exit(timeout=timeout)
    finally:
        await daemon.stop()
    return daemon, code
