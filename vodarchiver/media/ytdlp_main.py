"""yt-dlp's own command line, with its fragment resume made exact and kill-safe.

Run as `python -m vodarchiver.media.ytdlp_main <yt-dlp arguments>`.

Upstream (yt-dlp 2026.10.26) writes the resume index into its `.ytdl` file when it appends a
fragment to the `.part` file, but with concurrent fragments that index is bumped by worker
threads as soon as a fragment finishes *downloading*. It can run up to N fragments ahead of what
was appended, so a process killed at that moment resumes past fragments it never wrote, and the
file has a hole. We measured it: a 10-minute VOD resumed after a stop came out 36 s short.

A second gap: the index is written just after a fragment is appended, so a kill between the
two leaves a fragment in the file that the index does not count, and the resume appends it
again (measured: a file 6 s too long). A third: the index file is rewritten in place, so a kill
between truncating and writing it leaves it empty; yt-dlp then "restarts from the beginning"
while still appending to the old `.part` (measured: a 240 s VOD came out 330 s long).

The fix counts the fragments really appended (the main thread appends them strictly in order,
starting from the resume point, and `--abort-on-unavailable-fragments` means none is skipped),
writes that count as the index, and writes the `.part` length that goes with it, atomically
(a temporary file renamed over the old one). Before a resume, the `.part` file is cut back to
that length, so the file and the index always agree; an index file that cannot be read means
starting clean, never appending to a `.part` of unknown content.
Everything else is yt-dlp unchanged. The downloader still checks each file's duration, so a
future upstream change cannot slip a hole past us.
"""

from __future__ import annotations

import json
import os
from typing import Any

from yt_dlp import main
from yt_dlp.downloader.fragment import FragmentFD

_APPENDED = "_vodarchiver_appended"
_BYTES = "_vodarchiver_bytes"
_BYTES_KEY = "vodarchiver_bytes"


def _cut_back(self: FragmentFD, ctx: dict[str, Any]) -> None:
    """Make the `.part` file agree with the index saved next to it (see the module docstring)."""
    part, state = self.temp_name(ctx["filename"]), self.ytdl_filename(ctx["filename"])
    if ctx.get("live") or not os.path.isfile(part):
        return
    if not os.path.isfile(state):
        # yt-dlp deletes the index just before renaming a finished `.part`; a kill in between
        # leaves a file nothing vouches for. Appending to it would double it: start clean.
        os.truncate(part, 0)
        return
    try:
        with open(state, encoding="utf-8") as fh:
            saved = json.load(fh)["downloader"]
        recorded, index = saved.get(_BYTES_KEY), saved["current_fragment"]["index"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded, index = -1, None  # unreadable: yt-dlp would start over, appending to the old file
    if recorded is None:
        if index == 0:  # saved at the very start: whatever the file holds came after it
            os.truncate(part, 0)
        return
    if not isinstance(recorded, int) or recorded < 0:
        os.remove(part)
        os.remove(state)
        return
    size = os.path.getsize(part)
    if size > recorded:
        os.truncate(part, recorded)  # a fragment written after the index was saved: drop it
    elif size < recorded:  # the file lost bytes the index counts: only a fresh start is safe
        os.remove(part)
        os.remove(state)


def _prepare(original: Any) -> Any:
    def prepare(self: FragmentFD, ctx: dict[str, Any]) -> None:
        _cut_back(self, ctx)
        original(self, ctx)
        ctx[_APPENDED] = ctx.get("fragment_index", 0)  # the resume point (0 when fresh)
        ctx[_BYTES] = ctx.get("complete_frags_downloaded_bytes", 0)

    return prepare


def _append(self: FragmentFD, ctx: dict[str, Any], frag_content: bytes) -> None:
    try:
        ctx["dest_stream"].write(frag_content)
        ctx["dest_stream"].flush()
        ctx[_APPENDED] = ctx.get(_APPENDED, 0) + 1  # only once the bytes are really written
        ctx[_BYTES] = ctx["dest_stream"].tell()
    finally:
        if self._FragmentFD__do_ytdl_file(ctx):
            self._write_ytdl_file(ctx)
        if not self.params.get("keep_fragments", False):
            self.try_remove(ctx["fragment_filename_sanitized"])
        del ctx["fragment_filename_sanitized"]


def _write_ytdl_file(self: FragmentFD, ctx: dict[str, Any]) -> None:
    target = self.ytdl_filename(ctx["filename"])
    stream, temporary = self.sanitize_open(f"{target}.tmp", "w")
    try:
        downloader: dict[str, Any] = {
            "current_fragment": {"index": ctx.get(_APPENDED, ctx["fragment_index"])}
        }
        if _BYTES in ctx:
            downloader[_BYTES_KEY] = ctx[_BYTES]
        if "extra_state" in ctx:
            downloader["extra_state"] = ctx["extra_state"]
        if ctx.get("fragment_count") is not None:
            downloader["fragment_count"] = ctx["fragment_count"]
        stream.write(json.dumps({"downloader": downloader}))
    finally:
        stream.close()
    os.replace(temporary, target)  # atomic: the index file is always whole, old or new


def _finish(original: Any) -> Any:
    def finish(self: FragmentFD, ctx: dict[str, Any], info_dict: dict[str, Any]) -> Any:
        total, appended = ctx.get("total_frags"), ctx.get(_APPENDED)
        if (
            not ctx.get("live")
            and isinstance(total, int)
            and appended is not None
            and appended != total
        ):
            # Never let a file with a hole through: discard it so the next attempt starts clean.
            ctx["dest_stream"].close()
            for path in (self.temp_name(ctx["filename"]), self.ytdl_filename(ctx["filename"])):
                if os.path.isfile(path):
                    os.remove(path)
            self.report_error(f"vodarchiver: only {appended} of {total} fragments were written")
            return False
        return original(self, ctx, info_dict)

    return finish


def install() -> None:
    """Patch FragmentFD; raises if yt-dlp's internals no longer look as expected."""
    for name in ("_prepare_frag_download", "_append_fragment", "_write_ytdl_file",
                 "_finish_frag_download", "_FragmentFD__do_ytdl_file"):  # fmt: skip
        if not hasattr(FragmentFD, name):
            raise RuntimeError(f"yt-dlp changed: FragmentFD.{name} is gone; review ytdlp_main.py")
    FragmentFD._prepare_frag_download = _prepare(FragmentFD._prepare_frag_download)
    FragmentFD._append_fragment = _append
    FragmentFD._write_ytdl_file = _write_ytdl_file
    FragmentFD._finish_frag_download = _finish(FragmentFD._finish_frag_download)


if __name__ == "__main__":
    install()
    main()
