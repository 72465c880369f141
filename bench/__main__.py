"""Runs every benchmark in turn and prints its figures."""

from __future__ import annotations

import asyncio

from bench import startup


def main() -> None:
    """Entry point of `make bench`."""
    asyncio.run(startup.main())


main()
