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

`--vodarchiver-tee-fd N` (first, before yt-dlp's own arguments) also writes the file, as it
grows, to descriptor N: a pipe into ffmpeg, so the remux to mp4 runs during the download instead
of after it. The `.part` file stays the only resume state: a resume first sends what the file
holds (after the cut back), then each fragment as it is appended, so the pipe carries exactly
the bytes of the finished file. When it did, the last line is `VODARCHIVER-TEE-COMPLETE
<bytes>`; without that line (the reader went away, a second file, a live stream, a download
that never reached FragmentFD) the downloader remuxes the finished file instead.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from yt_dlp import main
from yt_dlp.downloader.common import FileDownloader
from yt_dlp.downloader.fragment import FragmentFD

from vodarchiver.media.ytdlp import TEE_COMPLETE, TEE_OPTION

_APPENDED = "_vodarchiver_appended"
_BYTES = "_vodarchiver_bytes"
_BYTES_KEY = "vodarchiver_bytes"
_COPY_BLOCK = 1 << 20


class _Tee:
    """The pipe into ffmpeg: everything appended to the file, in order, or nothing more."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        self.sent = 0
        self.started = False

    def give_up(self) -> None:
        """Stop feeding the pipe; the downloader then remuxes the finished file."""
        if self.fd is not None:
            os.close(self.fd)  # ffmpeg sees the end of its input and stops
            self.fd = None

    def send(self, data: bytes | memoryview) -> None:
        if self.fd is None:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:  # the reader died (EPIPE) or the pipe broke: the download goes on
            self.give_up()
            return
        self.sent += len(data)

    def start(self, path: str, length: int) -> None:
        """Send the first `length` bytes already in `path` (a resume's earlier fragments)."""
        if self.started:  # a second file in one run: the pipe cannot hold two
            self.give_up()
            return
        self.started = True
        with open(path, "rb") as fh:
            while self.fd is not None and self.sent < length:
                block = fh.read(min(_COPY_BLOCK, length - self.sent))
                if not block:  # the file is shorter than it said: the pipe would be wrong
                    self.give_up()
                    return
                self.send(block)

    def finish(self, size: int | None) -> None:
        if self.fd is not None and self.started and size == self.sent:
            print(f"{TEE_COMPLETE}{self.sent}", flush=True)
        self.give_up()


_tee: _Tee | None = None


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


def _no_needless_truncate(original: Any) -> Any:
    """`sanitize_open` that opens an absent or empty file for appending rather than writing.

    Upstream opens every new `.part` and fragment file with "wb", which truncates it after
    opening, and ext4 (auto_da_alloc) flushes a truncated file to disk when it is closed: each
    fragment file was written out before being read back and deleted, and the close of a 1 GB
    `.part` stalled the end of the download for 1 to 3 seconds. On an absent or empty file,
    appending writes exactly the same bytes; a file with content keeps its "w" (a restart).
    """

    def sanitize_open(self: FileDownloader, filename: str, open_mode: str) -> Any:
        if open_mode.startswith("w") and filename != "-":
            try:
                empty = os.path.getsize(filename) == 0
            except OSError:  # absent (or unreadable: the open itself will say so)
                empty = True
            if empty:
                open_mode = "a" + open_mode[1:]
        return original(self, filename, open_mode)

    return sanitize_open


def _prepare(original: Any) -> Any:
    def prepare(self: FragmentFD, ctx: dict[str, Any]) -> None:
        _cut_back(self, ctx)
        original(self, ctx)
        ctx[_APPENDED] = ctx.get("fragment_index", 0)  # the resume point (0 when fresh)
        ctx[_BYTES] = ctx.get("complete_frags_downloaded_bytes", 0)
        if _tee is not None:
            if ctx.get("live") or ctx["tmpfilename"] == "-":
                _tee.give_up()
            else:
                ctx["dest_stream"].flush()
                _tee.start(ctx["tmpfilename"], os.path.getsize(ctx["tmpfilename"]))

    return prepare


def _append(self: FragmentFD, ctx: dict[str, Any], frag_content: bytes) -> None:
    try:
        ctx["dest_stream"].write(frag_content)
        ctx["dest_stream"].flush()
        ctx[_APPENDED] = ctx.get(_APPENDED, 0) + 1  # only once the bytes are really written
        ctx[_BYTES] = ctx["dest_stream"].tell()
        if _tee is not None:
            _tee.send(frag_content)
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
        done = original(self, ctx, info_dict)
        if _tee is not None:
            _tee.finish(ctx.get(_BYTES) if done else None)
        return done

    return finish


def install(tee_fd: int | None = None) -> None:
    """Patch FragmentFD; raises if yt-dlp's internals no longer look as expected."""
    global _tee  # noqa: PLW0603 - one download per process, set before yt-dlp starts
    _tee = _Tee(tee_fd) if tee_fd is not None else None
    if getattr(FragmentFD, "_vodarchiver_installed", False):  # patched once per process
        return
    if not hasattr(FileDownloader, "sanitize_open"):
        raise RuntimeError(
            "yt-dlp changed: FileDownloader.sanitize_open is gone; review ytdlp_main.py"
        )
    for name in ("_prepare_frag_download", "_append_fragment", "_write_ytdl_file",
                 "_finish_frag_download", "_FragmentFD__do_ytdl_file"):  # fmt: skip
        if not hasattr(FragmentFD, name):
            raise RuntimeError(f"yt-dlp changed: FragmentFD.{name} is gone; review ytdlp_main.py")
    FileDownloader.sanitize_open = _no_needless_truncate(FileDownloader.sanitize_open)
    FragmentFD._prepare_frag_download = _prepare(FragmentFD._prepare_frag_download)
    FragmentFD._append_fragment = _append
    FragmentFD._write_ytdl_file = _write_ytdl_file
    FragmentFD._finish_frag_download = _finish(FragmentFD._finish_frag_download)
    FragmentFD._vodarchiver_installed = True


def _split_argv(args: list[str]) -> tuple[int | None, list[str]]:
    """Our own option, if first, and yt-dlp's arguments."""
    if args[:1] == [TEE_OPTION] and len(args) > 1:
        return int(args[1]), args[2:]
    return None, args


if __name__ == "__main__":
    tee_fd, ytdlp_args = _split_argv(sys.argv[1:])
    install(tee_fd)
    main(ytdlp_args)
