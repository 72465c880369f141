"""`vodarchiver healthcheck` finds the daemon where HTTP_ADDR says it listens."""

from __future__ import annotations

import pytest

from vodarchiver.selfcheck import healthz_target, host_header
from vodarchiver.values import parse_host_port


@pytest.mark.parametrize(
    ("http_addr", "target"),
    [
        ("0.0.0.0:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:9123", ("127.0.0.1", 9123)),
        ("127.0.0.1:7000", ("127.0.0.1", 7000)),
        ("[::]:8081", ("::1", 8081)),
        ("[::1]:8082", ("::1", 8082)),
        ("vodarchiver.internal:80", ("vodarchiver.internal", 80)),
    ],
)
def test_wildcards_are_reached_through_loopback_and_the_port_follows(
    http_addr: str, target: tuple[str, int]
) -> None:
    """A wildcard address maps to loopback; the port is HTTP_ADDR's, never a fixed 8080."""
    assert healthz_target(parse_host_port(http_addr)) == target


def test_port_zero_cannot_be_checked() -> None:
    """HTTP_ADDR with port 0 (a free port at start-up) is a clear error, not a guess."""
    with pytest.raises(ValueError, match="port 0"):
        healthz_target(parse_host_port("127.0.0.1:0"))


def test_ipv6_host_headers_are_bracketed() -> None:
    """The Host header of an IPv6 literal is bracketed, as HTTP requires."""
    assert host_header("::1", 8080) == "[::1]:8080"
    assert host_header("127.0.0.1", 8080) == "127.0.0.1:8080"
