"""Chapters in published descriptions, and a 13-hour VOD cut at a chapter boundary."""

from __future__ import annotations

import psycopg

from tests.integration import test_upload_stage
from tests.integration.test_upload_stage import Rig
from tests.media import make_long_mp4

rig = test_upload_stage.rig  # the upload stage's fixture: fake Google, store, stage

H = 3600


async def _chapters(rig: Rig, vod_id: str, marks: list[tuple[int, str]]) -> None:
    """Chapters as the replay stage stores them from GQL."""
    async with await psycopg.AsyncConnection.connect(rig.db_url, autocommit=True) as conn:
        for position, (start_s, title) in enumerate(marks):
            await conn.execute(
                "INSERT INTO vod_chapters (vod_id, position, start_ms, duration_ms, title) "
                "SELECT id, %s, %s, 0, %s FROM vods WHERE twitch_vod_id = %s",
                (position, start_s * 1000, title, vod_id),
            )


async def test_chapters_appear_in_the_published_description(rig: Rig) -> None:
    """A one-part VOD's video lists its games as YouTube chapters from 0:00."""
    await rig.add_vod("4101", b"x" * 1000, duration_s=3 * H)
    await _chapters(rig, "4101", [(0, "Just Chatting"), (1200, "Art"), (H, "Music")])
    await rig.drain()
    (video,) = rig.fake.uploaded()
    assert "0:00 Just Chatting\n20:00 Art\n1:00:00 Music" in video.description


async def test_a_13_hour_vod_is_split_at_a_chapter_with_both_parts_rebased(rig: Rig) -> None:
    """The game change at 11h30 (within 30 min of 11h55m) is the cut; each part's chapters start at 0:00."""
    source = make_long_mp4(13 * H)
    await rig.add_vod("4102", source, duration_s=13 * H, title="Marathon")
    await _chapters(rig, "4102", [(0, "Just Chatting"), (H, "Art"), (2 * H, "Minecraft"),
                                  (41400, "Elden Ring"), (12 * H, "Music"), (45000, "Outro")])  # fmt: skip
    await rig.drain()
    first, second = rig.fake.uploaded()
    async with await psycopg.AsyncConnection.connect(rig.db_url) as conn:
        cur = await conn.execute("SELECT round(start_s) FROM youtube_uploads ORDER BY part")
        assert [int(r[0]) for r in await cur.fetchall()] == [0, 41400]
    assert "0:00 Just Chatting\n1:00:00 Art\n2:00:00 Minecraft\n" in first.description
    assert "Elden Ring" not in first.description
    assert "0:00 Elden Ring\n30:00 Music\n1:00:00 Outro\n" in second.description
    assert first.title.endswith("(Part 1/2)")
