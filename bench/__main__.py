"""Runs every benchmark in turn and prints its figures (`make bench`)."""

from __future__ import annotations

import asyncio

from bench import chat, console, discovery, download, replay, scale, startup, upload, wakeups
from bench.common import external_server
from vodarchiver import logs


async def run_all() -> None:
    """Every benchmark against one PostgreSQL."""
    logs.configure("warning", "text")
    async with external_server() as admin_url:
        await startup.main(admin_url)
        await discovery.main(admin_url)
        await download.main(admin_url)
        await upload.main(admin_url)
        await chat.main(admin_url)
        await replay.main(admin_url)
        await console.main(admin_url)
        await scale.main(admin_url)
        print("Idle claims and wake-ups:")
        await wakeups.main(admin_url)


asyncio.run(run_all())
