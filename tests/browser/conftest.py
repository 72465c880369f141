"""Browser fixtures: one headless Debian chromium for the whole session, a fresh page per test.

Playwright drives the system's chromium through the DevTools protocol (`executable_path`), so no
browser is downloaded; `scripts/ensure-tools test` installs Debian's package. As root, chromium
needs `--no-sandbox`. A page records its console errors and failed requests so a test can assert
that nothing on the page broke (a CSP violation shows up there too).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Browser, Page, async_playwright

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The system chromium: $CHROMIUM, else the first candidate on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "no chromium found: run scripts/ensure-tools test (apt-get install chromium)"
    )


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless chromium shared by every browser test."""
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Console:
    """A page plus what went wrong on it."""

    page: Page
    errors: list[str] = field(default_factory=list)


@pytest.fixture
async def console(browser: Browser) -> AsyncIterator[Console]:
    """A fresh 1280x800 page (own cookies) that records script errors and CSP violations."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(30_000)
    out = Console(page)
    # A 404 from a route another issue adds (/session, /admin/audit) is expected before it lands;
    # a script error or a Content-Security-Policy violation is not.
    page.on("console", lambda m: out.errors.append(m.text) if "Content Security Policy" in m.text
            else None)  # fmt: skip
    page.on("pageerror", lambda e: out.errors.append(str(e)))
    try:
        yield out
    finally:
        await context.close()
