"""CONFIG.md and the settings declared in code stay in step."""

from __future__ import annotations

import re
from pathlib import Path

from vodarchiver.config import GROUPS, VARIABLES

CONFIG_MD = Path(__file__).resolve().parents[2] / "CONFIG.md"
_ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*(.*?)\s*\|\s*(.*?)\s*\|\s*$")


def documented() -> dict[str, tuple[str, str]]:
    """{variable: (group heading, default cell)} from CONFIG.md's tables."""
    found: dict[str, tuple[str, str]] = {}
    group = ""
    for line in CONFIG_MD.read_text().splitlines():
        if line.startswith("## "):
            group = line[3:].strip()
        match = _ROW.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} is documented twice"
            found[match.group(1)] = (group, match.group(2))
    return found


def expected_default(default: str | None) -> str:
    """How a default is written in CONFIG.md."""
    if default is None:
        return "(unset)"
    return "(empty)" if default == "" else f"`{default}`"


def test_every_setting_is_documented_with_its_default_and_group() -> None:
    """Each variable the code reads has a CONFIG.md row in its group, with the same default."""
    docs = documented()
    for var in VARIABLES:
        assert var.name in docs, f"{var.name} is missing from CONFIG.md"
        group, default = docs[var.name]
        assert group == var.group, (
            f"{var.name} is under {group!r} in CONFIG.md, {var.group!r} in code"
        )
        assert default == expected_default(var.default), f"{var.name}: CONFIG.md says {default}"


def test_config_md_documents_nothing_the_code_does_not_read() -> None:
    """No CONFIG.md row names a variable the code does not know."""
    known = {var.name for var in VARIABLES}
    assert set(documented()) <= known, set(documented()) - known


def test_groups_are_known() -> None:
    """Every variable's group is one of the CONFIG.md sections."""
    assert {var.group for var in VARIABLES} <= set(GROUPS)
