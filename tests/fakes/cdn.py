"""A fake video CDN: serves generated HLS VODs over real HTTP, with failure knobs.

`/vods/<name>/index.m3u8` and `/vods/<name>/<segment>` serve the files of a registered HlsVod.
Knobs, per path (the playlist or a segment name), consumed in order:
- `fail(name, segment, status, times)`: answer 403, 404, 500 ... instead, `times` times
  (`times=None`: forever, a fragment that never comes);
- `drop(name, segment, times)`: send the headers and half the body, then cut the connection;
- `throttle_bps`: a bandwidth cap per response; `latency_s`: a delay before every answer.
Everything served is counted: `bytes_served`, and `requests` (path, status) in order.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from starlette.types import Receive, Scope, Send

from tests.media import HlsVod


@dataclass
class _Knob:
    status: int | None  # None: drop the connection midway
    times: int | None  # None: forever


@dataclass
class FakeCdn:
    """An ASGI app serving HLS VODs with knobs; see the module docstring."""

    vods: dict[str, Path] = field(default_factory=dict)
    throttle_bps: float = 0.0
    latency_s: float = 0.0
    bytes_served: int = 0
    requests: list[tuple[str, int]] = field(default_factory=list)
    _knobs: dict[str, list[_Knob]] = field(default_factory=lambda: defaultdict(list))
    _watchers: list[tuple[int, asyncio.Event]] = field(default_factory=list)
    _cache: dict[Path, bytes] = field(default_factory=dict)

    def add(self, name: str, vod: HlsVod) -> str:
        """Serve `vod` under /vods/<name>/; returns the playlist path to append to the base URL."""
        self.vods[name] = vod.directory
        return f"/vods/{name}/index.m3u8"

    def fail(self, name: str, what: str, status: int, times: int | None = 1) -> None:
        """Answer `status` for `what` (a segment name or "index.m3u8") `times` times (None: always)."""
        self._knobs[f"/vods/{name}/{what}"].append(_Knob(status, times))

    def drop(self, name: str, what: str, times: int = 1) -> None:
        """Cut the connection halfway through the body of `what`, `times` times."""
        self._knobs[f"/vods/{name}/{what}"].append(_Knob(None, times))

    def when_served(self, n_bytes: int) -> asyncio.Event:
        """An event set once `n_bytes` more bytes have been served (from now)."""
        event = asyncio.Event()
        self._watchers.append((self.bytes_served + n_bytes, event))
        return event

    def _count(self, n_bytes: int) -> None:
        self.bytes_served += n_bytes
        for threshold, event in self._watchers:
            if self.bytes_served >= threshold:
                event.set()

    def served(self, status: int | None = None) -> int:
        """How many requests were answered (with this status)."""
        return sum(1 for _, s in self.requests if status is None or s == status)

    def reset(self) -> None:
        """Forget knobs and counters (the VODs stay)."""
        self._knobs.clear()
        self.requests.clear()
        self.bytes_served = 0
        self.throttle_bps = 0.0
        self.latency_s = 0.0

    def _knob(self, path: str) -> _Knob | None:
        knobs = self._knobs.get(path)
        if not knobs:
            return None
        knob = knobs[0]
        if knob.times is not None:
            knob.times -= 1
            if knob.times <= 0:
                knobs.pop(0)
        return knob

    def _file(self, path: str) -> bytes | None:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "vods" or parts[1] not in self.vods:
            return None
        file = self.vods[parts[1]] / parts[2]
        if "/" in parts[2] or not file.is_file():
            return None
        if file not in self._cache:
            self._cache[file] = file.read_bytes()
        return self._cache[file]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        knob = self._knob(path)
        body = self._file(path)
        if knob is not None and knob.status is not None:
            await self._answer(send, knob.status, b"error", path)
            return
        if body is None:
            await self._answer(send, 404, b"not found", path)
            return
        kind = b"application/vnd.apple.mpegurl" if path.endswith(".m3u8") else b"video/mp2t"
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.requests.append((path, 200))
        if knob is not None:  # drop: half the body, then the connection goes
            self._count(len(body) // 2)
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            raise ConnectionResetError("fake CDN dropped the connection")
        await self._send_body(send, body)

    async def _send_body(self, send: Send, body: bytes) -> None:
        chunk = 64 * 1024
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            self._count(len(piece))
            more = start + chunk < len(body)
            await send({"type": "http.response.body", "body": piece, "more_body": more})
            if self.throttle_bps:
                await asyncio.sleep(len(piece) / self.throttle_bps)
        if not body:
            await send({"type": "http.response.body", "body": b""})

    async def _answer(self, send: Send, status: int, body: bytes, path: str) -> None:
        self.requests.append((path, status))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    """Serve HLS directories as a standalone process (for benchmarks): prints the port, then serves.

    python -m tests.fakes.cdn NAME=DIR [NAME=DIR ...] [--latency S] [--throttle BYTES_PER_S]
    """
    import argparse  # noqa: PLC0415 - only the standalone server needs these
    import socket  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    parser.add_argument("vods", nargs="+")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--throttle", type=float, default=0.0)
    args = parser.parse_args()
    cdn = FakeCdn(latency_s=args.latency, throttle_bps=args.throttle)
    for item in args.vods:
        name, _, directory = item.partition("=")
        cdn.vods[name] = Path(directory)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # before the port is printed: a client may connect at once
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(cdn, log_config=None, access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
