"""Serves an ASGI app with uvicorn on 127.0.0.1 inside the running event loop, for fakes.

The socket is bound here, on port 0, so the port is known before uvicorn starts and two fakes
never race for a port. uvicorn runs as a task of the current loop (no thread), so a test can
change a fake's state between requests without locks. Signal handling is switched off: the
test runner (and the daemon under test) own SIGINT and SIGTERM, not a fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LocalServer:
    """One ASGI app on http://127.0.0.1:<free port> for as long as the test needs it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            # A client that holds a request open must not hang the test's teardown.
            timeout_graceful_shutdown=1,
        )
        self._server = _QuietServer(self._config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    async def start(self) -> LocalServer:
        """Bind a free port, start serving and return once uvicorn accepts connections."""
        if self._task is not None:
            raise RuntimeError("LocalServer already started")
        # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
        # IPPROTO_TCP, and without it every keep-alive answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        self._socket = sock
        self._task = asyncio.create_task(
            self._server.serve(sockets=[sock]), name=f"local-server-{self._port}"
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        # uvicorn offers no event for "started"; polling its flag is the documented way.
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces the startup error
                raise RuntimeError("uvicorn exited before it started")
            if loop.time() > deadline:
                await self.stop()
                raise TimeoutError(f"uvicorn did not start within {START_TIMEOUT_S} s")
            await asyncio.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        """The bound port."""
        if self._port is None:
            raise RuntimeError("LocalServer not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop accepting connections, close open ones and wait for uvicorn to finish."""
        task, self._task = self._task, None
        if task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
            except TimeoutError:
                self._server.force_exit = True
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def __aenter__(self) -> LocalServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
