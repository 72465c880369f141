"""Unsafe templates stop the daemon and the CLI at start with exit 2, naming variable and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon import base_env, run_until_exit

UNSAFE = ["{title:d}", "{title.__class__.__mro__}", "{title:>300000000}"]


@pytest.mark.parametrize("template", UNSAFE)
async def test_daemon_refuses_an_unsafe_title_template(template: str, open_dir: Path) -> None:
    """`vodarchiver run` with an unsafe YOUTUBE_TITLE_TEMPLATE exits 2 naming it and the field."""
    daemon, code = await run_until_exit(
        base_env(DATA_DIR=str(open_dir), YOUTUBE_TITLE_TEMPLATE=template)
    )
    assert code == 2, daemon.output
    assert "YOUTUBE_TITLE_TEMPLATE" in daemon.output
    assert template[:12] in daemon.output
    assert "Traceback" not in daemon.output


async def test_cli_config_refuses_an_unsafe_description_template(open_dir: Path) -> None:
    """`vodarchiver config` with an unsafe description template exits 2 naming it."""
    daemon, code = await run_until_exit(
        base_env(DATA_DIR=str(open_dir), YOUTUBE_DESCRIPTION_TEMPLATE="{title:>300000000}"),
        args=("config",),
    )
    assert code == 2, daemon.output
    assert "YOUTUBE_DESCRIPTION_TEMPLATE" in daemon.output
    assert "{title:>300000000}" in daemon.output
