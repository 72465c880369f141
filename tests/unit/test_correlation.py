"""Which correlation ids are reused and which are replaced."""

from __future__ import annotations

import pytest

from vodarchiver.web import correlation_id


@pytest.mark.parametrize("supplied", ["abc-123", "x" * 128, "req 42 from probe", "~!@#$%^&*()"])
def test_printable_ids_up_to_128_are_reused(supplied: str) -> None:
    """A printable ASCII id of at most 128 characters is kept as it is."""
    assert correlation_id(supplied) == supplied


@pytest.mark.parametrize(
    "supplied", [None, "", "x" * 129, "bad\nline", "tab\there", "caf\u00e9", "\x1b[31mred"]
)
def test_other_ids_are_replaced(supplied: str | None) -> None:
    """Missing, too long, control characters or non-ASCII: a fresh 32-hex-digit id instead."""
    got = correlation_id(supplied)
    assert got != supplied
    assert len(got) == 32
    int(got, 16)
