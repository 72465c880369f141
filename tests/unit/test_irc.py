"""The Twitch IRC parser: Twitch's documented lines, escapes, events, and fuzzing."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vodarchiver.errors import IrcLineRejected
from vodarchiver.twitch.irc import (
    MAX_LINE_BYTES,
    Emote,
    chat_event,
    decode,
    excerpt,
    parse_badges,
    parse_emotes,
    parse_line,
    unescape_tag,
)
from vodarchiver.twitch.irc_link import READ_BYTES, TcpLink

# The sample lines of ../shared/EXTERNAL-APIS.md.
PRIVMSG = (
    "@badge-info=subscriber/8;badges=subscriber/6,premium/1;client-nonce=abc;color=#0000FF;"
    "display-name=Ronni;emotes=25:0-4,12-16/1902:6-10;first-msg=0;flags=;"
    "id=b34ccfc7-4977-403a-8a94-33c6bac34fb8;mod=0;returning-chatter=0;room-id=1337;subscriber=1;"
    "tmi-sent-ts=1507246572675;turbo=0;user-id=1337;user-type= "
    ":ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #ronni :Kappa Keepo Kappa\r\n"
)
CLEARCHAT = (
    "@ban-duration=350;room-id=1337;target-user-id=99;tmi-sent-ts=1507246572999 "
    ":tmi.twitch.tv CLEARCHAT #ronni :spammer"
)
CLEARMSG = (
    "@login=foo;room-id=;target-msg-id=94e6c7ff-bf98-4faa-af5d-7ad633a158a9;"
    "tmi-sent-ts=1507246573000 :tmi.twitch.tv CLEARMSG #ronni :deleted text"
)


def test_documented_privmsg_is_parsed_with_every_field() -> None:
    """Twitch's sample PRIVMSG yields id, time, user, badges, emotes and colour."""
    msg = parse_line(PRIVMSG)
    assert msg.command == "PRIVMSG"
    assert msg.nick == "ronni"
    assert msg.params == ("#ronni", "Kappa Keepo Kappa")
    event = chat_event(msg, received_ms=0)
    assert event is not None
    assert event.msg_id == "b34ccfc7-4977-403a-8a94-33c6bac34fb8"
    assert event.sent_at_ms == 1507246572675
    assert (event.user_id, event.login, event.display_name) == ("1337", "ronni", "Ronni")
    assert event.channel == "ronni"
    assert event.color == "#0000FF"
    assert event.text == "Kappa Keepo Kappa"
    assert not event.action
    assert parse_badges(event.tags["badges"]) == [("subscriber", "6"), ("premium", "1")]
    emotes = parse_emotes(event.tags["emotes"], event.text)
    assert emotes == [Emote("25", 0, 4), Emote("1902", 6, 10), Emote("25", 12, 16)]
    assert [event.text[e.start : e.end + 1] for e in emotes] == ["Kappa", "Keepo", "Kappa"]


def test_emote_ranges_count_code_points_not_bytes() -> None:
    """An emote after an emoji is found at its code-point index."""
    text = "\U0001f600 Kappa"
    assert parse_emotes("25:2-6", text) == [Emote("25", 2, 6)]
    assert text[2:7] == "Kappa"
    assert parse_emotes("25:2-60,x:1-2,:3-4,25:a-b", text) == []


def test_tag_values_are_unescaped() -> None:
    """`\\s`, `\\:`, `\\\\`, `\\r`, `\\n` are unescaped; an unknown escape drops its backslash."""
    assert unescape_tag(r"a\sb\:c\\d\re\nf") == "a b;c\\d\re\nf"
    assert unescape_tag("x\\qy\\") == "xqy"
    msg = parse_line(r"@system-msg=5\sraiders\sfrom\sX;flag;empty= :tmi.twitch.tv NOTICE #c :hi")
    assert msg.tags == {"system-msg": "5 raiders from X", "flag": "", "empty": ""}


def test_me_reply_and_bits() -> None:
    """/me is unwrapped and flagged; reply parent and bits are read."""
    line = ("@id=m1;tmi-sent-ts=5;bits=100;reply-parent-msg-id=p1;user-id=7 "
            ":bob!bob@bob.tmi.twitch.tv PRIVMSG #chan :\x01ACTION waves cheer100\x01")  # fmt: skip
    event = chat_event(parse_line(line), received_ms=0)
    assert event is not None
    assert event.action
    assert event.text == "waves cheer100"
    assert event.bits == 100
    assert event.reply_parent_id == "p1"


def test_clearchat_gets_a_deterministic_id_and_clearmsg_names_its_target() -> None:
    """CLEARCHAT replays collide on the same id; CLEARMSG carries the deleted message's id."""
    first = chat_event(parse_line(CLEARCHAT), received_ms=0)
    again = chat_event(parse_line(CLEARCHAT), received_ms=99)
    assert first is not None
    assert again is not None
    assert first.msg_id == again.msg_id
    assert (first.kind, first.user_id, first.login) == ("CLEARCHAT", "99", "spammer")
    deletion = chat_event(parse_line(CLEARMSG), received_ms=0)
    assert deletion is not None
    assert deletion.kind == "CLEARMSG"
    assert deletion.target_msg_id == "94e6c7ff-bf98-4faa-af5d-7ad633a158a9"
    assert deletion.text == "deleted text"


def test_usernotice_is_recorded_with_its_login_and_optional_message() -> None:
    """A resub USERNOTICE keeps its id, login tag and the user's own message."""
    line = (r"@id=u1;login=amy;msg-id=resub;system-msg=amy\ssubscribed;tmi-sent-ts=10 "
            ":tmi.twitch.tv USERNOTICE #chan :great stream")  # fmt: skip
    event = chat_event(parse_line(line), received_ms=0)
    assert event is not None
    assert (event.kind, event.login, event.text) == ("USERNOTICE", "amy", "great stream")
    assert event.tags["system-msg"] == "amy subscribed"


def test_other_commands_carry_no_event_and_missing_timestamps_use_receipt_time() -> None:
    """PING, NOTICE and numerics are not recorded; a message without tmi-sent-ts gets now."""
    assert chat_event(parse_line("PING :tmi.twitch.tv"), received_ms=0) is None
    assert parse_line("PING :tmi.twitch.tv").trailing == "tmi.twitch.tv"
    assert parse_line(":tmi.twitch.tv 001 justinfan1 :Welcome").command == "001"
    event = chat_event(parse_line("@id=x :a!a@a PRIVMSG #c :hi"), received_ms=42)
    assert event is not None
    assert event.sent_at_ms == 42


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "command"),
        ("@tags-only", "tags without"),
        (":prefix-only", "prefix without"),
        ("@a=b :p 12345 x", "command"),
        ("@id=1 PRIVMSG", "without a #channel"),
        ("@id=1 :a!a@a PRIVMSG nochannel :x", "#channel"),
        (":a!a@a PRIVMSG #c :no id", "without an id"),
        ("@login=x :tmi.twitch.tv CLEARMSG #c :x", "target-msg-id"),
        ("PING \x00", "NUL"),
        ("@x=" + "a" * MAX_LINE_BYTES + " PING", "bytes is over"),
        ("PING \ud800", "surrogates"),
    ],
)
def test_unusable_lines_are_rejected_with_a_reason(line: str, reason: str) -> None:
    """Each kind of bad line is rejected by decode() with a reason, never raised."""
    decoded = decode(line, received_ms=0)
    assert decoded.event is None
    assert decoded.rejected is not None
    assert reason in decoded.rejected
    with pytest.raises(IrcLineRejected):
        _parse_and_read(line)


def _parse_and_read(line: str) -> None:
    chat_event(parse_line(line), received_ms=0)


def test_excerpt_is_bounded_and_shows_control_characters() -> None:
    """Log excerpts are cut at the limit and escape control characters."""
    assert excerpt("a\x01b") == "a\\x01b"
    assert excerpt("x" * 500, limit=10) == "x" * 10 + "... (500 chars)"


_irc_alphabet = st.sampled_from(
    list("@:;= #!\\/-,.abcPRIVMSGCLEARCHTUSNOIDid0123456789\r\n\x01\x00é😀")
)
_structured = st.builds(
    lambda tags, prefix, cmd, params: f"{tags} {prefix} {cmd} {params}",
    st.text(_irc_alphabet, max_size=60).map(lambda s: "@" + s),
    st.text(_irc_alphabet, max_size=20).map(lambda s: ":" + s),
    st.sampled_from(["PRIVMSG", "USERNOTICE", "CLEARCHAT", "CLEARMSG", "PING", "001", "NOTICE"]),
    st.text(_irc_alphabet, max_size=60),
)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(_irc_alphabet, max_size=200), _structured))
def test_fuzz_no_line_raises_out_of_decode(line: str) -> None:
    """Whatever the line, decode() returns either a parsed message or a reason; events are storable."""
    decoded = decode(line, received_ms=1)
    assert (decoded.message is None) == (decoded.rejected is not None)
    if decoded.event is not None:
        assert decoded.event.msg_id
        assert "\x00" not in decoded.event.text
        assert all("\x00" not in k + v for k, v in decoded.event.tags.items())
        parse_emotes(decoded.event.tags.get("emotes", ""), decoded.event.text)
        parse_badges(decoded.event.tags.get("badges", ""))
    excerpt(line)


async def test_a_character_split_between_two_reads_arrives_whole() -> None:
    """TCP reads cut anywhere: a two-byte character across the cut is decoded, not replaced."""
    reader = asyncio.StreamReader()
    last = b"@id=2 :a!a@a.tmi.twitch.tv PRIVMSG #c :caf"
    filler = b"PING :tmi.twitch.tv\r\n"
    padding = READ_BYTES - len(last) - 1  # the first read ends after the first byte of the "e"
    lines = filler * (padding // len(filler)) + b"x" * (padding % len(filler)) + b"\r\n"
    reader.feed_data(lines[2:] + last + "\u00e9 ok\r\n".encode())
    link = TcpLink(reader, cast("asyncio.StreamWriter", None))
    await link.receive()  # the complete lines of the first read
    [line] = await link.receive()
    assert line.endswith("caf\u00e9 ok")
    assert "\ufffd" not in line
