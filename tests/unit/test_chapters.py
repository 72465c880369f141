"""Chapters: rebased per part, YouTube's chapter rules, the description, split points."""

from __future__ import annotations

from datetime import UTC, datetime

from vodarchiver.media import splitter
from vodarchiver.youtube import chapters, metadata

H = 3600.0
MARATHON = [(0.0, "Just Chatting"), (1 * H, "Art"), (2 * H, "Minecraft"), (11.5 * H, "Elden Ring"),
            (12 * H, "Music"), (12.5 * H, "Outro")]  # fmt: skip
LIMIT = 11 * H + 55 * 60


def test_rebase_starts_each_part_with_the_chapter_in_progress() -> None:
    """The second part starts at 0:00 with the game running at its start, others shifted."""
    assert chapters.rebase(MARATHON, 0, 11.5 * H) == [
        (0, "Just Chatting"),
        (H, "Art"),
        (2 * H, "Minecraft"),
    ]
    assert chapters.rebase(MARATHON, 11.75 * H, 13 * H) == [
        (0, "Elden Ring"), (0.25 * H, "Music"), (0.75 * H, "Outro")]  # fmt: skip


def test_youtube_form_needs_zero_three_and_ten_seconds() -> None:
    """First at 0:00, at least three, each at least 10 s; anything else is not chapter form."""
    assert chapters.youtube_form([(0, "a"), (10, "b"), (20, "c")], 30)
    assert not chapters.youtube_form([(0, "a"), (10, "b")], 30)  # two
    assert not chapters.youtube_form([(5, "a"), (15, "b"), (25, "c")], 40)  # not at 0
    assert not chapters.youtube_form([(0, "a"), (9, "b"), (20, "c")], 30)  # 9 s
    assert not chapters.youtube_form([(0, "a"), (10, "b"), (20, "c")], 29)  # last 9 s


def test_block_is_timestamps_or_only_names() -> None:
    """Valid chapters are `M:SS`/`H:MM:SS Title` lines; otherwise the games without times."""
    assert (
        chapters.block(MARATHON, 0, 11.5 * H)
        == "0:00 Just Chatting\n1:00:00 Art\n2:00:00 Minecraft"
    )
    assert chapters.block([(0, "A"), (600, "B")], 0, 1200) == "Played: A, B"
    assert chapters.block([], 0, 100) == ""


def test_description_lists_chapters_even_when_the_template_omits_them() -> None:
    """A template without {chapters} still gets them after its text, before the marker."""
    facts = metadata.VodFacts("1", "alice", "Stream", datetime(2026, 1, 1, tzinfo=UTC), "u", 3 * 3600, [],
                              [(0, "Just Chatting"), (600, "Art"), (1800, "Music")])  # fmt: skip
    meta = metadata.build(facts, metadata.PartSpan(1, 1, 0, 3 * H), title_template="{title}",
                          description_template="{title}", tags=[])  # fmt: skip
    assert meta.description.startswith("Stream\n\n0:00 Just Chatting\n10:00 Art\n30:00 Music\n")
    with_field = metadata.build(facts, metadata.PartSpan(1, 1, 0, 3 * H), title_template="{title}",
                                description_template="Games:\n{chapters}", tags=[])  # fmt: skip
    assert with_field.description.count("0:00 Just Chatting") == 1


def test_a_13_hour_vod_is_cut_at_the_chapter_nearest_below_the_limit() -> None:
    """13 h, limit 11h55m, a game change at 11h30 within 30 min: one cut there."""
    cuts = splitter.plan_cuts(13 * H, 2, limit_s=LIMIT, chapter_starts=[at for at, _ in MARATHON],
                              distance_s=1800)  # fmt: skip
    assert cuts == [11.5 * H]


def test_a_chapter_too_far_below_the_limit_cuts_at_the_limit() -> None:
    """The nearest boundary is 55 min below the limit, past a 30 min distance: cut at the limit."""
    cuts = splitter.plan_cuts(13 * H, 2, limit_s=LIMIT, chapter_starts=[0, 11 * H], distance_s=1800)
    assert cuts == [LIMIT]


def test_no_chapters_keeps_equal_parts() -> None:
    """Without chapters the VOD is cut in equal parts, as before."""
    assert splitter.plan_cuts(13 * H, 2, limit_s=LIMIT, chapter_starts=[], distance_s=1800) == [
        6.5 * H
    ]
    assert splitter.plan_cuts(H, 1, limit_s=LIMIT, chapter_starts=[0, 60], distance_s=1800) == []


def test_the_size_limit_shortens_the_reach() -> None:
    """A file twice the size limit: a part may only be about half the VOD long."""
    limit = splitter.part_limit_s(10 * H, 2 * 2**30, max_duration_s=LIMIT, max_bytes=2**30)
    assert limit < 5 * H
    assert splitter.part_limit_s(10 * H, 2**29, max_duration_s=LIMIT, max_bytes=2**30) == LIMIT
