"""The layering in ARCHITECTURE.md is a fact: import-linter's contracts in pyproject.toml hold."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import vodarchiver

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    """`lint-imports` (as `make lint` runs it) keeps every contract."""
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_every_module_has_a_layer() -> None:
    """Each top-level module and package of vodarchiver is placed in the layers contract.

    A new module must be given its layer in pyproject.toml ([tool.importlinter], the first
    contract), or nothing would check which way its imports point.
    """
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = config["tool"]["importlinter"]["contracts"][0]["layers"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    package = Path(vodarchiver.__file__).parent
    present = {f"vodarchiver.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    present |= {f"vodarchiver.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert present - placed == set(), "give these modules a layer in pyproject.toml"
