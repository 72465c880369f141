"""A part's YouTube metadata: title and description from templates, tags, and our marker. Pure.

The marker names the Twitch VOD and the part. It goes at the end of the description and into the
tags, so a video that YouTube stored but we never recorded (a crash between YouTube's 200 and our
commit, or a session that expired) is found in the channel's uploads and adopted, never uploaded
a second time. YouTube refuses titles over 100 characters, descriptions over 5,000 bytes, tags
over 500 characters together, and `<` or `>` anywhere in them; every value is cleaned and cut to
fit, and the marker always survives the cut.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vodarchiver.youtube import chapters

TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000
TAGS_MAX_CHARS = 500
TEMPLATE_FIELDS = ("channel", "title", "date", "vod_id", "url", "duration", "part", "parts",
                   "chapters")  # fmt: skip
_ANGLE = str.maketrans({"<": "\u2039", ">": "\u203a"})  # look-alikes YouTube accepts
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class VodFacts:
    """What the templates may use about a VOD."""

    vod_id: str
    channel: str
    title: str
    created_at: datetime | None
    url: str
    duration_s: int
    muted_segments: Sequence[Mapping[str, Any]]
    chapters: Sequence[tuple[float, str]] = ()  # (start in seconds, title), from Twitch GQL
    generation: int = 1  # bumped by each reprocess; the marker names it


@dataclass(frozen=True)
class PartSpan:
    """Which stretch of the VOD a part covers."""

    part: int  # 1-based
    parts: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class VideoMetadata:
    """The video resource's snippet and status fields for one part."""

    title: str
    description: str
    tags: tuple[str, ...]
    marker: str

    def resource(self, *, category_id: str, privacy: str) -> dict[str, Any]:
        """The body of `videos.insert`."""
        return {
            "snippet": {
                "title": self.title,
                "description": self.description,
                "tags": list(self.tags),
                "categoryId": category_id,
            },
            "status": {"privacyStatus": privacy, "selfDeclaredMadeForKids": False},
        }


def marker(vod_id: str, part: int, parts: int, generation: int = 1) -> str:
    """The machine marker that identifies a part on YouTube.

    A reprocessed VOD (generation 2 and on) names its generation, so the search for a new part's
    marker never finds, and adopts, a video of an earlier generation (the first generation keeps
    the form it always had, so videos published before reprocessing existed are still found).
    """
    gen = f" gen={generation}" if generation > 1 else ""
    return f"[vodarchiver vod={vod_id}{gen} part={part}/{parts}]"


def marker_tags(vod_id: str, part: int, parts: int) -> tuple[str, ...]:
    """The marker as tags (YouTube tags cannot hold `=` or `/` reliably)."""
    return ("vodarchiver", f"twitch-vod-{vod_id}", f"vodarchiver-part-{part}-of-{parts}")


def check_template(template: str) -> str:
    """A template's text, or ValueError naming the first field that is not a plain field name.

    Only `{name}` is allowed: attribute or index access (`{title.__class__}`, `{title[0]}`)
    publishes Python internals, a conversion (`{title!r}`) or a format spec (`{title:d}`,
    `{title:>300000000}`) fails every upload or eats memory, so all of them are refused here,
    at start-up, rather than at the first upload.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"is not a valid template ({exc}); write literal braces as {{{{ }}}}") \
            from None  # fmt: skip
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        shown = (
            "{"
            + name
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
        if name not in TEMPLATE_FIELDS:
            if re.split(r"[.\[]", name, maxsplit=1)[0] in TEMPLATE_FIELDS:
                raise ValueError(
                    f"field {shown[:60]} uses attribute or index access; only plain names like "
                    "{title} are allowed"
                )
            raise ValueError(
                f"unknown field {shown[:60]}; the fields are {', '.join(TEMPLATE_FIELDS)}"
            )
        if conversion or spec:
            raise ValueError(
                f"field {shown[:60]} has a conversion or format spec; only plain names like "
                "{title} are allowed"
            )
    return template


def clock(seconds: float) -> str:
    """H:MM:SS, as YouTube links timestamps in descriptions."""
    total = max(0, int(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def clean(text: str) -> str:
    """No `<`, `>` or control characters; newlines kept."""
    return _CONTROL.sub("", text.translate(_ANGLE))


def cut_chars(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def cut_bytes(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, cut on a character boundary, ellipsis when cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: max(0, limit - 3)].decode(errors="ignore").rstrip() + "\u2026"


def _muted_lines(facts: VodFacts, span: PartSpan) -> list[str]:
    lines = []
    for seg in facts.muted_segments:
        try:
            start, length = float(seg["offset"]), float(seg["duration"])
        except (KeyError, TypeError, ValueError):
            continue
        end = start + length
        if end <= span.start_s or start >= span.end_s:
            continue
        a, b = max(start, span.start_s) - span.start_s, min(end, span.end_s) - span.start_s
        lines.append(f"{clock(a)} - {clock(b)}")
    return lines


def _chapters_text(facts: VodFacts, span: PartSpan) -> str:
    marks = [(float(at), clean(name)) for at, name in facts.chapters]
    return chapters.block(marks, span.start_s, span.end_s)


def _fields(facts: VodFacts, span: PartSpan) -> dict[str, Any]:
    return {
        "channel": facts.channel,
        "title": facts.title.strip() or f"Twitch VOD {facts.vod_id}",
        "date": facts.created_at.strftime("%Y-%m-%d") if facts.created_at else "",
        "vod_id": facts.vod_id,
        "url": facts.url,
        "duration": clock(span.end_s - span.start_s if span.parts > 1 else facts.duration_s),
        "part": span.part,
        "parts": span.parts,
        "chapters": _chapters_text(facts, span),
    }


def build(
    facts: VodFacts,
    span: PartSpan,
    *,
    title_template: str,
    description_template: str,
    tags: Sequence[str],
) -> VideoMetadata:
    """Title, description and tags of one part, cleaned and cut to YouTube's limits."""
    fields = _fields(facts, span)
    suffix = f" (Part {span.part}/{span.parts})" if span.parts > 1 else ""
    title = " ".join(clean(title_template.format(**fields)).split())
    title = cut_chars(title or fields["title"], TITLE_MAX_CHARS - len(suffix)) + suffix

    mark = marker(facts.vod_id, span.part, span.parts, facts.generation)
    body = clean(description_template.format(**fields)).strip()
    if fields["chapters"] and "{chapters}" not in description_template:
        body += "\n\n" + fields["chapters"]  # the template left them out: listed after it
    muted = _muted_lines(facts, span)
    if muted:
        body += "\n\nMuted by Twitch (no sound in these stretches):\n" + "\n".join(muted)
    tail = f"\n\n{mark}"
    description = cut_bytes(body, DESCRIPTION_MAX_BYTES - len(tail.encode())) + tail

    chosen: list[str] = []
    used = 0
    for raw in (*marker_tags(facts.vod_id, span.part, span.parts), *tags):
        tag = " ".join(clean(raw).replace(",", " ").split())
        cost = len(tag) + (2 if " " in tag else 0) + (1 if chosen else 0)  # quotes and commas
        if tag and tag not in chosen and used + cost <= TAGS_MAX_CHARS:
            chosen.append(tag)
            used += cost
    return VideoMetadata(title, description.lstrip(), tuple(chosen), mark)
