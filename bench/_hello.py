"""Baseline process: the smallest starlette + uvicorn server answering /healthz.

It imports and serves the same web stack as the daemon, so the ratio against it isolates what
vodarchiver adds (settings, logging, PostgreSQL, migrations, pool) from Python and uvicorn start-up.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def healthz(_: Request) -> PlainTextResponse:
    """Always ok."""
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/healthz", healthz)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off")
