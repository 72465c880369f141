"""`vodarchiver healthcheck`: asks the running daemon's `/healthz` at the address HTTP_ADDR names.

Container healthchecks call it (Dockerfile, compose.yaml) so that a changed HTTP_ADDR moves the
check with it instead of a hard-coded port turning a healthy container "unhealthy". A wildcard
listen address is reached through loopback, which the daemon's Host allow-list always accepts.
Standard library only: the check runs every few seconds and must start fast.
"""

from __future__ import annotations

import http.client
import ipaddress

from vodarchiver.values import HostPort

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapped away


def healthz_target(addr: HostPort) -> tuple[str, int]:
    """The (host, port) to connect to for a daemon listening on `addr`; ValueError for port 0."""
    if addr.port == 0:
        raise ValueError("port 0 picks a free port at start-up, so no healthcheck can find it")
    return _WILDCARDS.get(addr.host, addr.host), addr.port


def host_header(host: str, port: int) -> str:
    """The Host header for `host:port` (IPv6 literals in brackets)."""
    try:
        is_v6 = isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        is_v6 = False
    return f"[{host}]:{port}" if is_v6 else f"{host}:{port}"


def probe(addr: HostPort, timeout_s: float = 4.0) -> tuple[bool, str]:
    """(healthy, one line saying why) after one GET of `/healthz`."""
    host, port = healthz_target(addr)
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/healthz", headers={"Host": host_header(host, port)})
        response = conn.getresponse()
        response.read()
    except OSError as exc:
        return False, f"http://{host_header(host, port)}/healthz: {exc.__class__.__name__}: {exc}"
    finally:
        conn.close()
    where = f"http://{host_header(host, port)}/healthz"
    return response.status == 200, f"{where} answered {response.status}"
