"""Named, supervised long-running tasks.

Every long-running part of the daemon is a task with a name. None of them is supposed to end on
its own. A core task (the HTTP server, the embedded database's watch) that returns or raises
stops the daemon (exit 1): the supervisor reports which and why. An optional stage (discovery,
chat, notifications, retention...) that returns or raises is restarted after a doubling, capped
delay instead, and `/readyz` names it and its error until it has run a while again: a wrong
credential or a bug in one stage never takes the others down. Stopping goes in reverse start
order, so the parts that take work stop before the ones they depend on (the HTTP server, started
first, stops last).
A task may bring its own stop function (ask nicely, then wait); the others are cancelled, which
is where they checkpoint. Whatever has not stopped within the deadline is abandoned and logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from vodarchiver.logs import get_logger
from vodarchiver.models import CheckResult

# Restart delays of an optional stage: 1 s doubling to 5 minutes; a stage that ran this long
# since its last start counts as healthy again (the next crash starts from 1 s).
RESTART_BASE_S = 1.0
RESTART_CAP_S = 300.0
HEALTHY_AFTER_S = 600.0


def restart_delay(
    crashes: int, *, base_s: float = RESTART_BASE_S, cap_s: float = RESTART_CAP_S
) -> float:
    """Seconds before the restart that follows the `crashes`-th crash in a row."""
    return float(min(cap_s, base_s * 2 ** max(0, crashes - 1)))


@dataclass
class StageHealth:
    """An optional stage as /readyz sees it."""

    crashes: int = 0
    restarts: int = 0
    last_error: str | None = None
    waiting: bool = False
    started_at: float = 0.0  # loop time of the last (re)start


@dataclass(frozen=True)
class TaskExit:
    """A supervised task that ended by itself: its name, and its exception if it raised."""

    name: str
    error: BaseException | None

    def describe(self) -> str:
        """One line saying how it ended."""
        if self.error is None:
            return f"task {self.name!r} returned, but it should run until shutdown"
        return f"task {self.name!r} died: {self.error.__class__.__name__}: {self.error}"


@dataclass
class _Entry:
    name: str
    task: asyncio.Task[None]
    stop: Callable[[], None] | None


class Supervisor:
    """Starts named tasks, notices the first that dies, and stops them all in order."""

    def __init__(self, *, restart_base_s: float = RESTART_BASE_S) -> None:
        self._restart_base_s = restart_base_s
        self._entries: list[_Entry] = []
        self.health: dict[str, StageHealth] = {}
        self._log = get_logger("supervisor")

    @property
    def names(self) -> list[str]:
        """The tasks started so far, in start order."""
        return [e.name for e in self._entries]

    def start(
        self,
        name: str,
        coro: Coroutine[Any, Any, None] | Callable[[], Coroutine[Any, Any, None]],
        *,
        stop: Callable[[], None] | None = None,
        optional: bool = False,
    ) -> None:
        """Run `coro` as task `name`; `stop`, if given, asks it to finish instead of a cancel.

        `optional`: `coro` is a function making the stage's coroutine, called again to restart
        the stage after a crash (with backoff) instead of stopping the daemon.
        """
        if name in self.names:
            if not callable(coro):
                coro.close()
            raise ValueError(f"a task named {name!r} is already running")
        if optional:
            if not callable(coro):
                coro.close()
                raise TypeError("an optional stage is given as a function that makes it")
            self.health[name] = StageHealth()
            coro = self._keep_running(name, coro)
        elif callable(coro):
            coro = coro()
        task = asyncio.create_task(coro, name=name)
        self._entries.append(_Entry(name, task, stop))
        self._log.debug("task_started", task=name)

    async def _keep_running(self, name: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        health = self.health[name]
        loop = asyncio.get_running_loop()
        while True:
            began = health.started_at = loop.time()
            try:
                await make()
                error, exc_info = "returned, but it should run until shutdown", None
            except Exception as exc:
                error, exc_info = f"{exc.__class__.__name__}: {exc}", exc
            healthy = loop.time() - began >= HEALTHY_AFTER_S
            health.crashes = 1 if healthy else health.crashes + 1
            delay = restart_delay(health.crashes, base_s=self._restart_base_s)
            health.last_error, health.waiting = error, True
            # One line per crash (the traceback on the first of a series); the delay doubles,
            # so even a crash loop writes a handful of lines an hour.
            self._log.error("stage_crashed", task=name, reason=error, restart_in_s=delay,
                            crashes=health.crashes,
                            exc_info=exc_info if health.crashes == 1 else None)  # fmt: skip
            await asyncio.sleep(delay)
            health.restarts += 1
            health.waiting = False
            self._log.info("stage_restarted", task=name, restarts=health.restarts)

    async def wait(self, stop_requested: asyncio.Event) -> TaskExit | None:
        """Until shutdown is requested (None) or a task ends by itself (which one and how)."""
        stopper = asyncio.create_task(stop_requested.wait(), name="stop-requested")
        try:
            while True:
                pending = {e.task for e in self._entries if not e.task.done()}
                for entry in self._entries:
                    if entry.task.done():
                        return self._exit_of(entry)
                if stop_requested.is_set():
                    return None
                await asyncio.wait({stopper, *pending}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()

    def _exit_of(self, entry: _Entry) -> TaskExit:
        error = None if entry.task.cancelled() else entry.task.exception()
        exit_ = TaskExit(entry.name, error)
        self._log.error("task_died", task=entry.name, reason=exit_.describe(), exc_info=error)
        return exit_

    async def shutdown(self, timeout_s: float) -> bool:
        """Stop every task, newest first, within `timeout_s`; False if some did not stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        clean = True
        for entry in reversed(self._entries):
            if entry.task.done():
                continue
            if entry.stop is not None:
                entry.stop()
            else:
                entry.task.cancel()
            remaining = max(0.0, deadline - loop.time())
            done, _ = await asyncio.wait({entry.task}, timeout=remaining)
            if not done:
                clean = False
                entry.task.cancel()
                self._log.warning("task_abandoned", task=entry.name, timeout_s=timeout_s)
                continue
            if not entry.task.cancelled() and entry.task.exception() is not None:
                clean = False
                self._log.error(
                    "task_failed_while_stopping",
                    task=entry.name,
                    exc_info=entry.task.exception(),
                )
            else:
                self._log.debug("task_stopped", task=entry.name)
        return clean


class StagesCheck:
    """`/readyz`: every optional stage runs; one that crashed is named with its error."""

    name = "stages"

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    async def check(self) -> CheckResult:
        """Not ready while a stage waits to restart, or crashed less than 10 minutes ago."""
        stages = self._supervisor.health
        now = asyncio.get_running_loop().time()
        down = {n: h for n, h in stages.items()
                if h.waiting or (h.crashes and now - h.started_at < HEALTHY_AFTER_S)}  # fmt: skip
        if not down:
            return CheckResult(True, f"{len(stages)} optional stage(s) running")
        return CheckResult(False, "; ".join(
            f"{n} {'restarting' if h.waiting else 'restarted'} after {h.crashes} crash(es): "
            f"{h.last_error}" for n, h in down.items()))  # fmt: skip
