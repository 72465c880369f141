"""A small real filesystem for tests that need a full disk: a tmpfs mounted for the test.

A disk that fills up cannot be faked honestly by patching `shutil.disk_usage`: yt-dlp, ffmpeg
and our own code must meet a real ENOSPC. Mounting needs root (as on the developers' and CI's
machines); elsewhere the tests that use it are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


class Tmpfs:
    """A mounted tmpfs of a given size (and optionally few inodes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def free(self) -> int:
        """Free bytes, as the daemon reads them."""
        return shutil.disk_usage(self.path).free

    def resize(self, size: int, *, inodes: int | None = None) -> None:
        """Grow or shrink it in place (space returns, or goes)."""
        options = f"remount,size={size}" + (f",nr_inodes={inodes}" if inodes else "")
        subprocess.run(["mount", "-o", options, str(self.path)], check=True, capture_output=True)


@contextlib.contextmanager
def tmpfs(size: int, *, inodes: int | None = None) -> Iterator[Tmpfs]:
    """A tmpfs of `size` bytes mounted on a fresh directory, unmounted afterwards."""
    path = Path(tempfile.mkdtemp(prefix="vodarchiver-tmpfs-"))
    options = f"size={size},mode=0711" + (f",nr_inodes={inodes}" if inodes else "")
    mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    done = subprocess.run(mount, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        path.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield Tmpfs(path)
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False, capture_output=True)
        path.rmdir()
