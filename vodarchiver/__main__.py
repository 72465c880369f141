"""`python -m vodarchiver`: the same entry point as the `vodarchiver` console script."""

from __future__ import annotations

from vodarchiver.cli import main

raise SystemExit(main())
