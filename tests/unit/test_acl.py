"""POSIX ACL encoding and the search-permission decision."""

from __future__ import annotations

from vodarchiver.db.acl import acl_from_mode, encode_acl, parse_acl, with_search_for

UNDEF = 0xFFFFFFFF


def test_round_trip_and_kernel_order() -> None:
    """Encoding sorts entries by tag then id, and parsing gives back the same ACL."""
    acl = {(0x20, UNDEF): 0, (0x02, 101): 1, (0x01, UNDEF): 7, (0x10, UNDEF): 1, (0x04, UNDEF): 0}
    blob = encode_acl(acl)
    assert blob[:4] == b"\x02\x00\x00\x00"
    assert parse_acl(blob) == acl
    tags = [blob[i] for i in range(4, len(blob), 8)]
    assert tags == sorted(tags)


def test_minimal_acl_mirrors_the_mode() -> None:
    """Mode 0750 becomes owner rwx, group r-x, other nothing."""
    assert acl_from_mode(0o40750) == {(0x01, UNDEF): 7, (0x04, UNDEF): 5, (0x20, UNDEF): 0}


def test_granting_search_adds_one_user_and_a_mask() -> None:
    """Only the named user gains x; the mask lets it through without widening the group."""
    granted = with_search_for(acl_from_mode(0o700), 101)
    assert granted[(0x02, 101)] == 1
    assert granted[(0x10, UNDEF)] == 1
    assert granted[(0x04, UNDEF)] == 0
    assert granted[(0x20, UNDEF)] == 0


def test_granting_keeps_an_existing_mask_and_other_entries() -> None:
    """An existing ACL keeps its entries; its mask only gains x."""
    existing = {
        (0x01, UNDEF): 7,
        (0x02, 5): 6,
        (0x04, UNDEF): 4,
        (0x10, UNDEF): 6,
        (0x20, UNDEF): 0,
    }
    granted = with_search_for(existing, 101)
    assert granted[(0x02, 5)] == 6
    assert granted[(0x10, UNDEF)] == 7
    assert granted[(0x02, 101)] == 1
