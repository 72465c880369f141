"""Chat replay's pure parts: resume points, pacing, backoff, GQL parsing, extras' budget."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vodarchiver.errors import GqlRefused, QuotaExhausted, YouTubeRequestError, YouTubeUnavailable
from vodarchiver.pipeline import extras_rules, replay_rules
from vodarchiver.pipeline.quota import QuotaPlan, parse_budgets, parse_costs
from vodarchiver.pipeline.replay_rules import Position
from vodarchiver.twitch import gql_models

NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


def test_the_next_request_follows_the_cursor_unless_refused() -> None:
    """A cursor is followed; once refused, the offset is used, never both keys."""
    assert Position(10, "c").request() == (None, "c")
    assert replay_rules.on_cursor_refused(Position(10, "c")).request() == (10, None)
    assert gql_models.comments_request("1", offset_s=5, cursor="c")["variables"] == {
        "videoID": "1", "cursor": "c"}  # fmt: skip
    assert gql_models.comments_request("1", offset_s=5, cursor=None)["variables"] == {
        "videoID": "1", "contentOffsetSeconds": 5}  # fmt: skip


def test_resume_point_is_the_last_second_and_always_progresses() -> None:
    """After a page the resume offset is its last second; a page stuck in one second moves on."""
    after = replay_rules.after_page(Position(0, None), by_offset=False, first_s=0, last_s=40,
                                    cursor="k")  # fmt: skip
    assert (after.offset_s, after.cursor) == (40, "k")
    stuck = replay_rules.after_page(Position(40, None, True), by_offset=True, first_s=40,
                                    last_s=40, cursor="k")  # fmt: skip
    assert stuck.offset_s == 41


def test_pacing_and_backoff() -> None:
    """Starts are spaced by the interval; failures wait longer, Retry-After wins, then give up."""
    assert replay_rules.pace_wait_s(None, 5.0, 0.25) == 0
    assert replay_rules.pace_wait_s(5.0, 5.1, 0.25) == pytest.approx(0.15)
    assert replay_rules.retry_wait_s(1, retry_after_s=7.0, draw=0.0) == 7.0
    assert replay_rules.retry_wait_s(1, retry_after_s=None, draw=0.0) == 0.5
    assert replay_rules.retry_wait_s(replay_rules.MAX_TRIES, retry_after_s=None, draw=0.5) is None


def test_gql_refusals_are_told_apart() -> None:
    """Integrity, comments null, video null and malformed answers each have their reason."""
    integrity = {"errors": [{"message": "failed integrity check"}],
                 "data": {"video": {"comments": None}}, "extensions": {"challenge": {"type": "integrity"}}}  # fmt: skip
    cases = [(integrity, "integrity"), ({"data": {"video": {"comments": None}}}, "comments_null"),
             ([{"data": {"video": None}}], "video_null"), ("nope", "malformed"),
             ({"data": {"video": {"comments": {"edges": 3}}}}, "malformed")]  # fmt: skip
    for body, reason in cases:
        with pytest.raises(GqlRefused) as caught:
            gql_models.parse_comments(body)
        assert caught.value.reason == reason


def test_a_comment_becomes_irc_like_tags() -> None:
    """Fragments join into the text, emotes become code-point ranges, badges and colour kept."""
    node = {"id": "abc", "contentOffsetSeconds": 951, "commenter": None,
            "message": {"fragments": [{"emote": None, "text": "héllo "},
                                      {"emote": {"emoteID": "25"}, "text": "Kappa"}],
                        "userBadges": [{"setID": "subscriber", "version": "12"}, {"setID": ""}],
                        "userColor": "#1E90FF"}}  # fmt: skip
    page = gql_models.parse_comments({"data": {"video": {"comments": {
        "edges": [{"cursor": "k", "node": node}, {"cursor": "k", "node": {"id": ""}}],
        "pageInfo": {"hasNextPage": True}}}}})  # fmt: skip
    (comment,) = page.comments
    assert (comment.text, comment.offset_s, comment.login, page.cursor, page.has_next) == (
        "héllo Kappa", 951, None, "k", True)  # fmt: skip
    assert "emotes=25:6-10" in comment.raw_tags
    assert "badges=subscriber/12;" in comment.raw_tags


def test_extras_keep_one_video_insert_in_reserve() -> None:
    """Same bucket: the insert's units are held back; a separate upload bucket holds none back."""
    shared = QuotaPlan(parse_budgets("default=10000"), parse_costs(""))
    charge, budget = extras_rules.extra_charge(shared, "captions.insert", NOW)
    assert (charge.units, budget) == (400, 8400)
    split = QuotaPlan(
        parse_budgets("default=10000,uploads=100"), parse_costs("videos.insert=uploads:1")
    )
    assert extras_rules.extra_charge(split, "thumbnails.set", NOW)[1] == 10000


def test_extra_outcomes_and_thumbnail_urls() -> None:
    """Quota waits for the reset, a channel refusal is whole-channel, transient retries later."""
    quota = extras_rules.on_error("thumbnail", QuotaExhausted("x"), attempts=1, now=NOW)
    assert (quota.state, quota.quota, quota.retry_s) == ("pending", True, 12 * 3600)
    forbidden = YouTubeRequestError(403, "forbidden", "no")
    assert extras_rules.on_error("thumbnail", forbidden, attempts=1, now=NOW).whole_channel
    scope = YouTubeRequestError(403, "insufficientPermissions", "no")
    assert extras_rules.on_error("captions", scope, attempts=1, now=NOW).whole_channel
    assert (
        extras_rules.on_error("captions", YouTubeUnavailable("x"), attempts=2, now=NOW).retry_s
        == 120
    )
    assert (
        extras_rules.thumbnail_url("https://x/thumb0-%{width}x%{height}.jpg")
        == "https://x/thumb0-1280x720.jpg"
    )
    assert (
        extras_rules.thumbnail_url("https://x/_404/404_processing_%{width}x%{height}.png") is None
    )
    assert extras_rules.thumbnail_url("") is None
