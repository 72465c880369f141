"""vodarchiver: archives a streamer's Twitch VODs to YouTube before Twitch deletes them."""

from __future__ import annotations

# The single source of the version: pyproject.toml reads it from here (hatch), which spares
# every start-up the ~75 ms that importlib.metadata costs.
__version__ = "0.1.0"

__all__ = ["__version__"]
