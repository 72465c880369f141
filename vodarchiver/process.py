"""The only place that spawns processes.

Children are started from an argv list, never through a shell. A long-lived child can be tied
to our life: Linux's parent-death signal makes the kernel signal it when we die, even by SIGKILL,
so a killed daemon never leaves an orphan server behind. Children go into their own process
group, so a Ctrl-C in the terminal reaches the daemon (which then stops them in order) and not the
children directly. When we run as root, a child can be started as another user (PostgreSQL
refuses to run as root).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

_PR_SET_PDEATHSIG = 1

# What a child such as PostgreSQL needs from our environment, and no more: it may run as another
# user, and a process's environment is readable by that user through /proc.
MINIMAL_ENV = {"PATH": os.defpath, "LC_ALL": "C", "LANG": "C"}
_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL | None:
    global _libc  # noqa: PLW0603 - loaded once, in the parent, before any fork
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        except OSError:  # pragma: no cover - not Linux/glibc: no parent-death signal then
            return None
    return _libc


def _die_with_parent(sig: int, parent_pid: int) -> Callable[[], None]:
    libc = _load_libc()

    def preexec() -> None:  # runs in the child between fork and exec: keep it tiny
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class RunAs:
    """A user to run a child as (only meaningful when we are root)."""

    uid: int
    gid: int
    name: str


@dataclass(frozen=True)
class Completed:
    """What a finished child left: its exit status and its combined output."""

    returncode: int
    output: str


async def start(
    argv: Sequence[str],
    *,
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    die_with_parent: int | None = None,
    cwd: str | None = None,
    stdin: IO[Any] | int | None = asyncio.subprocess.DEVNULL,
    pass_fds: Sequence[int] = (),
) -> asyncio.subprocess.Process:
    """Start `argv` in its own process group. `die_with_parent` is the signal sent on our death;
    `pass_fds` are inherited by the child under the same numbers (no other descriptor is)."""
    kwargs: dict[str, Any] = {}
    if pass_fds:
        kwargs["pass_fds"] = tuple(pass_fds)
    if run_as is not None:
        kwargs.update(user=run_as.uid, group=run_as.gid, extra_groups=[])
    if die_with_parent is not None:
        kwargs["preexec_fn"] = _die_with_parent(die_with_parent, os.getpid())
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        **kwargs,
    )


async def run(
    argv: Sequence[str],
    *,
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
) -> Completed:
    """Run `argv` to completion and return its status and output; killed on timeout or cancel."""
    proc = await start(
        argv,
        run_as=run_as,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        die_with_parent=signal.SIGKILL,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except BaseException:
        await terminate(proc, ladder=())
        raise
    return Completed(
        proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace")
    )


Ladder = Sequence[tuple[int, float]]  # (signal, seconds to wait for an exit after sending it)


async def terminate(
    proc: asyncio.subprocess.Process,
    *,
    ladder: Ladder = ((signal.SIGTERM, 5.0),),
) -> int:
    """Send each signal of `ladder` in turn until the child exits, then SIGKILL; always reap.

    Returns the exit status. The total wait is bounded by the sum of the ladder's delays.
    """
    for sig, wait_s in ladder:
        if proc.returncode is not None:
            break
        _signal(proc, sig)
        try:
            async with asyncio.timeout(wait_s):
                await proc.wait()
        except TimeoutError:
            continue
    if proc.returncode is None:
        _signal(proc, signal.SIGKILL)
    await asyncio.shield(proc.wait())
    return proc.returncode if proc.returncode is not None else -1


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def signal_pid(pid: int, sig: int) -> bool:
    """Signal a process we did not start (an orphan of a killed run).

    False if it is gone; PermissionError if it belongs to a user we may not signal.
    """
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


async def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for a process we did not start to exit; True once it has.

    Uses a pidfd (readable when the process exits) where the kernel has them, so the wait is an
    event, not a poll; older kernels fall back to checking every 50 ms.
    """
    if not pid_alive(pid):
        return True
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    loop = asyncio.get_running_loop()
    if fd is not None:
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(fd, readable)
        try:
            async with asyncio.timeout(timeout_s):
                await exited
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        return not pid_alive(pid)
    deadline = loop.time() + timeout_s
    while pid_alive(pid) and loop.time() < deadline:  # noqa: ASYNC110 - no pidfd to wait on
        await asyncio.sleep(0.05)
    return not pid_alive(pid)


def cwd(pid: int) -> str | None:
    """The working directory of a running process, or None when it is gone or not ours to see."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def cmdline(pid: int) -> list[str]:
    """The argv of a running process, or [] when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
