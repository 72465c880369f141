"""The resume fix in vodarchiver.media.ytdlp_main: `.part` and its index always agree before a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from yt_dlp import YoutubeDL
from yt_dlp.downloader.hls import HlsFD

from vodarchiver.media import ytdlp_main


@pytest.fixture
def fd() -> HlsFD:
    """yt-dlp's real HLS downloader, with the fix installed."""
    ytdlp_main.install()
    return HlsFD(YoutubeDL({"quiet": True}), {})


def state(tmp_path: Path, part: bytes, saved: object) -> tuple[Path, Path, dict[str, object]]:
    """A .part file and its index file as a killed download left them."""
    out = tmp_path / "v.ts"
    (tmp_path / "v.ts.part").write_bytes(part)
    text = saved if isinstance(saved, str) else json.dumps(saved)
    (tmp_path / "v.ts.ytdl").write_text(text)
    return tmp_path / "v.ts.part", tmp_path / "v.ts.ytdl", {"filename": str(out)}


def test_bytes_past_the_index_are_cut(fd: HlsFD, tmp_path: Path) -> None:
    """A fragment written after the index was saved is dropped, so the resume does not append it twice."""
    part, ytdl, ctx = state(
        tmp_path,
        b"x" * 300,
        {"downloader": {"current_fragment": {"index": 2}, "vodarchiver_bytes": 200}},
    )
    ytdlp_main._cut_back(fd, ctx)
    assert part.stat().st_size == 200
    assert ytdl.exists()


def test_a_short_file_or_an_unreadable_index_starts_clean(fd: HlsFD, tmp_path: Path) -> None:
    """Fewer bytes than the index counts, or an empty index file (a kill mid-write): both files go."""
    for saved in ({"downloader": {"current_fragment": {"index": 3}, "vodarchiver_bytes": 900}}, ""):
        part, ytdl, ctx = state(tmp_path, b"x" * 300, saved)
        ytdlp_main._cut_back(fd, ctx)
        assert not part.exists()
        assert not ytdl.exists()


def test_an_index_saved_at_the_start_empties_the_file(fd: HlsFD, tmp_path: Path) -> None:
    """Index 0 without a byte count was saved before any fragment: what the file holds came after it."""
    part, _, ctx = state(tmp_path, b"x" * 300, {"downloader": {"current_fragment": {"index": 0}}})
    ytdlp_main._cut_back(fd, ctx)
    assert part.stat().st_size == 0


def test_the_index_file_is_written_whole(fd: HlsFD, tmp_path: Path) -> None:
    """The index records the fragments really appended and their byte count, via a rename (never half-written)."""
    ctx = {
        "filename": str(tmp_path / "v.ts"),
        "fragment_index": 9,
        "_vodarchiver_appended": 4,
        "_vodarchiver_bytes": 4000,
    }
    fd._write_ytdl_file(ctx)
    saved = json.loads((tmp_path / "v.ts.ytdl").read_text())["downloader"]
    assert saved["current_fragment"]["index"] == 4  # not the 9 the download threads had reached
    assert saved["vodarchiver_bytes"] == 4000
    assert not (tmp_path / "v.ts.ytdl.tmp").exists()


def test_a_file_with_a_hole_is_never_finished(fd: HlsFD, tmp_path: Path) -> None:
    """If fewer fragments were appended than the VOD has, yt-dlp must not finish: the files go, an error is raised."""
    part = tmp_path / "v.ts.part"
    part.write_bytes(b"x" * 100)
    (tmp_path / "v.ts.ytdl").write_text("{}")
    ctx = {"filename": str(tmp_path / "v.ts"), "total_frags": 10, "_vodarchiver_appended": 9,
           "dest_stream": part.open("ab"), "live": False}  # fmt: skip
    with pytest.raises(Exception, match="only 9 of 10 fragments"):
        fd._finish_frag_download(ctx, {})
    assert not part.exists()
    assert not (tmp_path / "v.ts.ytdl").exists()
    assert not (tmp_path / "v.ts").exists()


def test_a_part_without_its_index_is_not_appended_to(fd: HlsFD, tmp_path: Path) -> None:
    """yt-dlp removes the index just before renaming a finished .part; a kill between leaves nothing to trust."""
    part = tmp_path / "v.ts.part"
    part.write_bytes(b"x" * 300)
    ytdlp_main._cut_back(fd, {"filename": str(tmp_path / "v.ts")})
    assert part.stat().st_size == 0


def test_new_files_are_opened_without_truncating_and_old_ones_still_are(
    fd: HlsFD, tmp_path: Path
) -> None:
    """ "wb" on an absent or empty file becomes "ab" (no truncate, so ext4 does not flush it on close); a file with content is still truncated."""
    fresh = tmp_path / "fresh-Frag1.part"
    stream, _ = fd.sanitize_open(str(fresh), "wb")
    assert stream.mode == "ab"
    stream.write(b"new")
    stream.close()
    old = tmp_path / "old-Frag1.part"
    old.write_bytes(b"x" * 100)
    stream, _ = fd.sanitize_open(str(old), "wb")  # a restart of a fragment: must begin empty
    stream.write(b"new")
    stream.close()
    assert (fresh.read_bytes(), old.read_bytes()) == (b"new", b"new")
