"""The web guard's pure decision: hosts, origins, content types, tokens, sessions and loopback."""

from __future__ import annotations

import os

import pytest

from vodarchiver.config import load_settings
from vodarchiver.values import Secret
from vodarchiver.webguard import (
    Facts,
    GuardPolicy,
    Refusal,
    csrf_token,
    host_name,
    inspect,
    new_session,
    session_valid,
)

TOKEN = "0123456789abcdef-token"
NOW = 1_800_000_000.0


def facts(
    method: str = "GET", path: str = "/vods", client: str | None = "127.0.0.1", **headers: str
) -> Facts:
    """Request facts with a loopback Host unless given."""
    merged = {"host": "127.0.0.1:8080", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return Facts(method, path, merged, client)


def test_allowed_hosts_come_from_settings() -> None:
    """HTTP_ALLOWED_HOSTS and the HTTP_ADDR host are allowed, any other name is not; IP literals are."""
    settings = load_settings({"ENV_FILE": os.devnull, "HTTP_ADDR": "archiver.lan:8080",
                              "HTTP_ALLOWED_HOSTS": "Vod.Example.com, other.example"})  # fmt: skip
    policy = GuardPolicy.from_settings(settings)
    for host in ("archiver.lan:8080", "vod.example.com", "OTHER.example:443", "localhost:1",
                 "[::1]:8080", "10.1.2.3:8080", "[2001:db8::1]"):  # fmt: skip
        assert not isinstance(inspect(policy, facts(host=host), NOW), Refusal), host
    for host in ("rebind.attacker.example", "archiver.lan.attacker.example", "localhost:x", ""):
        verdict = inspect(policy, facts(host=host), NOW)
        assert isinstance(verdict, Refusal), host
        assert verdict.parameter == "Host"


def test_host_name_parsing() -> None:
    """Ports and IPv6 brackets are stripped; malformed Host values give None."""
    assert host_name("Example.COM:8080") == "example.com"
    assert host_name("[::1]:80") == "::1"
    assert host_name("[::1]x") is None
    assert host_name("a:b") is None


@pytest.mark.parametrize(
    ("headers", "parameter"),
    [
        ({"origin": "null", "content-type": "application/json"}, "Origin"),
        ({"origin": "http://127.0.0.1:9999", "content-type": "application/json"}, "Origin"),
        ({"sec-fetch-site": "same-site", "content-type": "application/json"}, "Sec-Fetch-Site"),
        ({"content-type": "text/plain"}, "Content-Type"),
        ({"content-type": "application/x-www-form-urlencoded"}, "Content-Type"),
        ({"content-length": "3"}, "Content-Type"),
        ({"transfer-encoding": "chunked"}, "Content-Type"),
    ],
)
def test_mutating_requests_refused(headers: dict[str, str], parameter: str) -> None:
    """Cross-site or non-JSON mutating requests are refused, even on loopback without a token."""
    verdict = inspect(GuardPolicy(), facts("POST", "/admin/x", **headers), NOW)
    assert isinstance(verdict, Refusal)
    assert verdict.parameter == parameter


def test_same_origin_json_and_empty_posts_pass() -> None:
    """A same-origin JSON POST (default port spelled or not) and an empty POST pass on loopback."""
    policy = GuardPolicy()
    ok = [
        facts("POST", "/admin/x", origin="http://127.0.0.1:8080", content_type="application/json"),
        facts("POST", "/admin/x", host="localhost", origin="http://localhost:80",
              content_type="application/merge-patch+json"),
        facts("POST", "/admin/x", content_length="0", sec_fetch_site="same-origin"),
        facts("POST", "/login", content_type="application/x-www-form-urlencoded"),
    ]  # fmt: skip
    for request in ok:
        assert inspect(policy, request, NOW) == "loopback", request


def test_token_and_sessions() -> None:
    """The bearer token gives `token`; a fresh session gives `session`; an expired or altered one nothing."""
    policy = GuardPolicy(admin_token=Secret(TOKEN))
    assert inspect(policy, facts(path="/admin/a", authorization=f"Bearer {TOKEN}"), NOW) == "token"
    cookie = new_session(policy, NOW)
    assert session_valid(policy, cookie, NOW + 60)
    assert not session_valid(policy, cookie, NOW + policy.session_ttl_s + 1)
    assert not session_valid(policy, cookie[:-1] + ("A" if cookie[-1] != "A" else "B"), NOW)
    other = GuardPolicy(admin_token=Secret(TOKEN + "x"))
    assert not session_valid(other, cookie, NOW)
    got = inspect(policy, facts(path="/admin/a", cookie=f"a=b; vodarchiver_session={cookie}"), NOW)
    assert got == "session"
    post = facts("POST", "/admin/a", cookie=f"vodarchiver_session={cookie}", content_length="0")
    refused = inspect(policy, post, NOW)
    assert isinstance(refused, Refusal)
    assert refused.parameter == "X-CSRF-Token"
    with_csrf = Facts(post.method, post.path, {**post.headers,
                                               "x-csrf-token": csrf_token(policy, cookie)}, None)  # fmt: skip
    assert inspect(policy, with_csrf, NOW) == "session"
    # The loopback exemption is gone once a token is set.
    refused = inspect(policy, facts(path="/admin/a"), NOW)
    assert isinstance(refused, Refusal)
    assert refused.status == 401


def test_loopback_detection() -> None:
    """Loopback clients include 127.0.0.0/8, ::1 and IPv4-mapped loopback; others are refused on /admin."""
    policy = GuardPolicy()
    for client in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
        assert inspect(policy, facts(path="/admin/a", client=client), NOW) == "loopback"
    for other in ("10.0.0.1", "::ffff:10.0.0.1", None, "not-an-ip"):
        verdict = inspect(policy, facts(path="/admin/a", client=other), NOW)
        assert isinstance(verdict, Refusal)
        assert verdict.status == 403
    assert inspect(policy, facts(path="/vods", client="10.0.0.1"), NOW) is None
