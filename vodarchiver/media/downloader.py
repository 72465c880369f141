"""One VOD from its URL to a verified mp4: yt-dlp, then ffmpeg's remux, then ffprobe's check.

Files live in `DATA_DIR/<channel>/<vod id>/`: yt-dlp writes `<id>.ts` (and its `.part` and
resume state while it works), ffmpeg writes `<id>.mp4.part`, renamed to `<id>.mp4` only once
ffprobe confirms that it parses and is as long as Helix says. A download that is stopped (the
daemon killed, a shutdown) leaves its fragments for the next attempt to resume from; a cancel,
or a file that fails its check, removes them. yt-dlp gets a parent-death signal, so a killed
daemon cannot leave a yt-dlp writing into files a restarted daemon resumes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vodarchiver import process
from vodarchiver.media import ffmpeg, ytdlp
from vodarchiver.media.ytdlp import Failure, Outcome, Progress

_TAIL_LINES = 200
_REMUX_TIMEOUT_S = 3600.0
_PROBE_TIMEOUT_S = 120.0
_PIPE_BYTES = 1 << 20  # Linux's limit for an unprivileged process (/proc/sys/fs/pipe-max-size)
WAITING_MARKER = ".waiting-for-disk"


@dataclass(frozen=True)
class Job:
    """What to download, and where it goes."""

    vod_id: str
    url: str
    duration_s: int | None  # Helix's, to verify against
    directory: Path

    @property
    def ts(self) -> Path:
        """yt-dlp's output: the fragments joined, as MPEG-TS."""
        return self.directory / f"{self.vod_id}.ts"

    @property
    def mp4(self) -> Path:
        """The verified result."""
        return self.directory / f"{self.vod_id}.mp4"

    @property
    def mp4_part(self) -> Path:
        """ffmpeg's output before it is verified."""
        return self.directory / f"{self.vod_id}.mp4.part"

    @property
    def waiting_marker(self) -> Path:
        """An empty file whose mtime says since when these partial files wait for disk."""
        return self.directory / WAITING_MARKER

    def partial_bytes(self) -> int:
        """Bytes already on disk from earlier attempts (what a resume will not fetch again)."""
        total = 0
        for path in (self.ts, self.directory / f"{self.vod_id}.ts.part"):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total


@dataclass(frozen=True)
class Downloaded:
    """A verified file."""

    path: Path
    size: int
    duration_s: float
    fetched_bytes: int  # what this attempt downloaded (less than `size` after a resume)
    streamed: bool = False  # remuxed while downloading, rather than afterwards


ProgressCallback = Callable[[Progress], Awaitable[None]]


@dataclass(frozen=True)
class Tools:
    """The programs a download runs."""

    python: str = sys.executable
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"

    def missing(self) -> list[str]:
        """Which of ffmpeg and ffprobe cannot be found."""
        return [name for name in (self.ffmpeg, self.ffprobe) if shutil.which(name) is None]


_LOCK_WAIT_S = 120.0  # longer than a lease: a worker that lost its lease stops within a third


@contextlib.asynccontextmanager
async def _exclusive(directory: Path) -> AsyncIterator[None]:
    """Hold the VOD directory's lock file: never two downloads writing the same files.

    Two attempts at one VOD only meet when a lease ran out under a live worker (a long database
    outage); the second waits until the first notices and stops.
    """
    fh = open(directory / ".lock", "a+b")  # noqa: SIM115, ASYNC230 - held for the whole download
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if loop.time() > deadline:
                    raise TimeoutError(f"another download holds {directory}") from None
                await asyncio.sleep(0.5)
        yield
    finally:
        fh.close()


def _remove_all_but(directory: Path, keep: Path) -> None:
    """Delete what a finished download no longer needs (the TS, yt-dlp's leftovers)."""
    for path in directory.iterdir():
        if path != keep and path.name != ".lock" and path.is_file():
            path.unlink(missing_ok=True)


def _ytdlp_env() -> dict[str, str]:
    """The daemon's environment holds secrets; yt-dlp gets only what it needs (and proxies)."""
    env = dict(process.MINIMAL_ENV)
    for key in ("HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    for key, value in os.environ.items():
        if key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            env[key] = value
    return env


class _StreamingRemux:
    """ffmpeg remuxing from a pipe that yt-dlp writes the file into as it grows (`ytdlp_main`).

    The remux of a long VOD takes seconds; done alongside the download, only its last step (the
    index moved to the front) is left once the last fragment arrives. The TS file stays the
    resume state: after a kill, the next attempt starts a new remux, and yt-dlp sends the
    fragments already on disk through the pipe first. The mp4 counts only if yt-dlp says the pipe
    carried the whole file; otherwise the downloader remuxes the file as before.
    """

    def __init__(self, proc: asyncio.subprocess.Process, fd: int, target: Path) -> None:
        self.fd = fd  # the pipe's writing end, for yt-dlp
        self._fd_open = True
        self._proc = proc
        self._target = target
        self._output = asyncio.ensure_future(proc.communicate())
        self._done = False

    @classmethod
    async def start(cls, target: Path, ffmpeg_path: str) -> _StreamingRemux:
        """Start ffmpeg reading from a new pipe (it overwrites `target`)."""
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):  # fewer wake-ups per fragment; the default is 64 KiB
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        try:
            proc = await process.start(
                ffmpeg.remux_argv(None, target, ffmpeg=ffmpeg_path),
                stdin=read_fd,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=process.MINIMAL_ENV,
                die_with_parent=signal.SIGKILL,
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        return cls(proc, write_fd, target)

    def handed_over(self) -> None:
        """yt-dlp has its copy of the writing end: ours must go, or ffmpeg never sees the end."""
        if self._fd_open:
            self._fd_open = False
            os.close(self.fd)

    async def finish(self) -> bool:
        """Wait for ffmpeg to write the mp4; False if it failed (the file is then remuxed)."""
        self.handed_over()
        try:
            async with asyncio.timeout(_REMUX_TIMEOUT_S):
                await asyncio.shield(self._output)
        except TimeoutError:
            return False
        self._done = self._proc.returncode == 0
        return self._done

    async def stop(self) -> None:
        """Stop ffmpeg if it still runs; remove its output unless it finished well."""
        self.handed_over()
        if self._proc.returncode is None:
            # SIGKILL at once: its output is thrown away, and on SIGTERM ffmpeg would first
            # finish the file (a faststart pass over everything written), delaying a cancel.
            await process.terminate(self._proc, ladder=())
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._output
        if not self._done:
            self._target.unlink(missing_ok=True)


class Downloader:
    """Runs one download at a time per call; any number of calls may run concurrently."""

    def __init__(
        self,
        *,
        fragments: int,
        rate_limit: str = "",
        retries: int = 10,
        retry_sleep: tuple[float, float] = (1.0, 30.0),
        tools: Tools | None = None,
        stream_remux: bool = True,
    ) -> None:
        self._fragments = fragments
        self._stream_remux = stream_remux
        self._rate_limit = rate_limit
        self._retries = retries
        self._retry_sleep = retry_sleep
        self._tools = tools or Tools()

    async def download(self, job: Job, on_progress: ProgressCallback) -> Downloaded | Failure:
        """Download, remux and verify; a Failure says why not. Cancellation stops yt-dlp."""
        try:
            job.directory.mkdir(parents=True, exist_ok=True)
            async with _exclusive(job.directory):
                return await self._download(job, on_progress)
        except OSError as exc:
            if not ytdlp.disk_full_error(exc):
                raise
            return Failure(Outcome.NO_DISK, f"the disk is full: {exc.strerror} ({exc.filename})")

    async def _download(self, job: Job, on_progress: ProgressCallback) -> Downloaded | Failure:
        if job.mp4.exists():  # a run killed after the rename but before it was recorded
            verdict = await self._verify(job, job.mp4)
            if isinstance(verdict, float):
                _remove_all_but(job.directory, job.mp4)
                return Downloaded(job.mp4, job.mp4.stat().st_size, verdict, 0)
            job.mp4.unlink()
        before = job.partial_bytes()
        streamed = await self._fetch(job, on_progress)
        if isinstance(streamed, Failure):
            return streamed
        if not streamed:
            remuxed = await self._remux(job)
            if remuxed is not None:
                return remuxed
        verdict = await self._verify(job, job.mp4_part)
        if not isinstance(verdict, float):
            # A file that does not check out is not resumed from: start clean next time.
            self.remove_files(job)
            return verdict
        job.mp4_part.rename(job.mp4)
        size = job.mp4.stat().st_size
        fetched_bytes = max(0, job.ts.stat().st_size - before)
        _remove_all_but(job.directory, job.mp4)
        return Downloaded(job.mp4, size, verdict, fetched_bytes, streamed)

    async def _fetch(self, job: Job, on_progress: ProgressCallback) -> Failure | bool:
        """yt-dlp's download; True when the remux ran alongside and its mp4 is complete."""
        remux: _StreamingRemux | None = None
        proc: asyncio.subprocess.Process | None = None
        try:
            if self._stream_remux and not job.ts.exists():  # else only the remux is left to do
                job.mp4_part.unlink(missing_ok=True)
                remux = await _StreamingRemux.start(job.mp4_part, self._tools.ffmpeg)
            argv = ytdlp.argv(
                job.url, job.ts, fragments=self._fragments, rate_limit=self._rate_limit,
                retries=self._retries, retry_sleep=self._retry_sleep, python=self._tools.python,
                tee_fd=remux.fd if remux is not None else None,
            )  # fmt: skip
            try:
                proc = await process.start(
                    argv,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env=_ytdlp_env(),
                    die_with_parent=signal.SIGKILL,
                    cwd=str(job.directory),
                    pass_fds=(remux.fd,) if remux is not None else (),
                )
            finally:
                if remux is not None:
                    remux.handed_over()
            teed, failure = await self._follow(proc, on_progress)
            if failure is None and not job.ts.exists():
                failure = Failure(Outcome.RETRY, "yt-dlp finished but wrote no file")
            if failure is not None or remux is None:
                return failure or False
            if teed != job.ts.stat().st_size:  # the pipe did not carry the whole file
                return False  # (the finally stops the streaming ffmpeg)
            return await remux.finish()
        except BaseException:
            # Cancelled (a cancel, a shutdown) or failing: yt-dlp must really stop, now.
            if proc is not None:
                await process.terminate(proc, ladder=((signal.SIGTERM, 2.0),))
            raise
        finally:
            if remux is not None:
                await remux.stop()

    async def _follow(
        self, proc: asyncio.subprocess.Process, on_progress: ProgressCallback
    ) -> tuple[int | None, Failure | None]:
        """Read yt-dlp's output to its end: the bytes it teed, and its failure if any."""
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        last: Progress | None = None
        teed: int | None = None
        assert proc.stdout is not None  # noqa: S101 - started with a pipe
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            progress = ytdlp.parse_progress(line)
            if progress is not None:
                last = progress
                await on_progress(progress)
            elif (count := ytdlp.parse_tee_complete(line)) is not None:
                teed = count
            elif line:
                tail.append(line)
        code = await proc.wait()
        if code == 0:
            return teed, None
        failure = ytdlp.classify(code, "\n".join(tail))
        if last is not None and last.fragment_index and failure.outcome is Outcome.RETRY:
            where = f"stopped at fragment {last.fragment_index} of {last.fragment_count}"
            failure = Failure(failure.outcome, f"{failure.reason}; {where}")
        return teed, failure

    async def _remux(self, job: Job) -> Failure | None:
        job.mp4_part.unlink(missing_ok=True)
        argv = ffmpeg.remux_argv(job.ts, job.mp4_part, ffmpeg=self._tools.ffmpeg)
        done = await process.run(argv, env=process.MINIMAL_ENV, timeout_s=_REMUX_TIMEOUT_S)
        if done.returncode == 0:
            return None
        job.mp4_part.unlink(missing_ok=True)
        outcome = Outcome.NO_DISK if ytdlp.disk_full(done.output) else Outcome.RETRY
        detail = done.output.strip().splitlines()[-1:] or [f"status {done.returncode}"]
        return Failure(outcome, f"remux failed: {detail[0][:300]}")

    async def _verify(self, job: Job, path: Path) -> float | Failure:
        """The file's duration if it parses and matches Helix's; else a Failure saying why."""
        done = await process.run(
            ffmpeg.probe_argv(path, ffprobe=self._tools.ffprobe),
            env=process.MINIMAL_ENV,
            timeout_s=_PROBE_TIMEOUT_S,
        )
        if done.returncode != 0:
            return Failure(Outcome.RETRY, f"the file does not parse: {done.output.strip()[:300]}")
        try:
            probe = ffmpeg.parse_probe(done.output)
        except ffmpeg.ProbeError as exc:
            return Failure(Outcome.RETRY, str(exc))
        if "video" not in probe.streams:
            return Failure(Outcome.RETRY, "the file has no video stream")
        if job.duration_s and not ffmpeg.duration_matches(probe.duration_s, job.duration_s):
            return Failure(
                Outcome.RETRY,
                f"the file lasts {probe.duration_s:.1f} s but the VOD {job.duration_s} s: "
                "incomplete download",
            )
        return probe.duration_s

    @staticmethod
    def waiting_since(job: Job) -> datetime | None:
        """Since when the VOD's partial files wait for disk (see `mark_waiting`); None: not."""
        try:
            return datetime.fromtimestamp(job.waiting_marker.stat().st_mtime, UTC)
        except OSError:
            return None

    @staticmethod
    def mark_waiting(job: Job, since: datetime) -> bool:
        """Record that the partial files wait for disk from `since` (an empty file's mtime: it
        needs no data block on a full disk). Nothing is recorded for a VOD with no files."""
        if not job.directory.is_dir():
            return False
        try:
            job.waiting_marker.touch()
            os.utime(job.waiting_marker, (since.timestamp(), since.timestamp()))
        except OSError:  # not even an inode left
            return False
        return True

    @staticmethod
    def clear_waiting(job: Job) -> None:
        """The wait is over (an attempt ran and ended otherwise)."""
        job.waiting_marker.unlink(missing_ok=True)

    @staticmethod
    def release(job: Job) -> int:
        """Remove the partial files of a VOD that no download is working on; the bytes freed.

        Taken under the directory's lock, without waiting: a download holding it keeps them.
        """
        if not job.directory.is_dir():
            return 0
        try:
            fh = open(job.directory / ".lock", "a+b")  # noqa: SIM115 - closed below
        except OSError:
            return 0
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            freed = sum(p.stat().st_size for p in job.directory.iterdir() if p.is_file())
            shutil.rmtree(job.directory, ignore_errors=True)
        return freed

    @staticmethod
    def remove_files(job: Job) -> None:
        """Delete everything this VOD's downloads left (a cancel, a file that failed its check)."""
        if job.directory.is_dir():
            shutil.rmtree(job.directory, ignore_errors=True)
