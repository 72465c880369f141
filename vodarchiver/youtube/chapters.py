"""A VOD's chapters (the games played, from Twitch GQL) as a part's YouTube chapters. Pure.

YouTube turns the timestamps of a description into chapters only when the first is `0:00`, there
are at least three, and each lasts at least 10 seconds. A part gets the chapters of its own
stretch, rebased to the part's start (the chapter in progress when the part starts begins at
`0:00`). When they cannot form YouTube chapters, the games are still named, without timestamps
at the start of a line, so YouTube does not half-read them as chapters.
"""

from __future__ import annotations

from collections.abc import Sequence

Mark = tuple[float, str]  # (start in seconds, title)
MIN_CHAPTERS = 3
MIN_CHAPTER_S = 10.0


def rebase(chapters: Sequence[Mark], start_s: float, end_s: float) -> list[Mark]:
    """The chapters within [start_s, end_s), relative to start_s; the one running at start is 0."""
    ordered = sorted(chapters)
    inside: list[Mark] = []
    current: str | None = None
    for at, title in ordered:
        if at <= start_s:
            current = title
        elif at < end_s:
            inside.append((at - start_s, title))
    if current is not None:
        inside.insert(0, (0.0, current))
    return inside


def youtube_form(marks: Sequence[Mark], length_s: float) -> bool:
    """Whether YouTube will read these as chapters: first at 0, three or more, each >= 10 s."""
    if len(marks) < MIN_CHAPTERS or marks[0][0] != 0:
        return False
    ends = [at for at, _ in marks[1:]] + [length_s]
    return all(end - at >= MIN_CHAPTER_S for (at, _), end in zip(marks, ends, strict=True))


def yt_clock(seconds: float) -> str:
    """`M:SS` under an hour, `H:MM:SS` from an hour, as YouTube writes chapter times."""
    total = max(0, int(seconds))
    hours, minutes, secs = total // 3600, total % 3600 // 60, total % 60
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def block(chapters: Sequence[Mark], start_s: float, end_s: float) -> str:
    """The `{chapters}` text of the part covering [start_s, end_s): YouTube chapters, or names."""
    marks = rebase(chapters, start_s, end_s)
    if not marks:
        return ""
    if youtube_form(marks, end_s - start_s):
        return "\n".join(f"{yt_clock(at)} {title}" for at, title in marks)
    names = list(dict.fromkeys(title for _, title in marks))
    return "Played: " + ", ".join(names)
