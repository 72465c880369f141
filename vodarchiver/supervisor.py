"""Named, supervised long-running tasks.

Every long-running part of the daemon is a task with a name. None of them is supposed to end on
its own: if one returns or raises, the supervisor reports which and why, and the daemon stops
(exit 1) rather than limping on without it. Stopping goes in reverse start order, so the parts
that take work stop before the ones they depend on (the HTTP server, started first, stops last).
A task may bring its own stop function (ask nicely, then wait); the others are cancelled, which
is where they checkpoint. Whatever has not stopped within the deadline is abandoned and logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from vodarchiver.logs import get_logger


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

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._log = get_logger("supervisor")

    @property
    def names(self) -> list[str]:
        """The tasks started so far, in start order."""
        return [e.name for e in self._entries]

    def start(
        self,
        name: str,
        coro: Coroutine[Any, Any, None],
        *,
        stop: Callable[[], None] | None = None,
    ) -> None:
        """Run `coro` as task `name`; `stop`, if given, asks it to finish instead of a cancel."""
        if name in self.names:
            coro.close()
            raise ValueError(f"a task named {name!r} is already running")
        task = asyncio.create_task(coro, name=name)
        self._entries.append(_Entry(name, task, stop))
        self._log.debug("task_started", task=name)

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
