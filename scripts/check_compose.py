#!/usr/bin/env python3
"""Validates compose.yaml and deploy/compose.public.yaml where Docker is absent (`make lint`).

Two layers: the Compose Specification's JSON schema (vendored in deploy/schema/ with its
Apache-2.0 licence) checks the shape, and our own rules check what the issue promised an
operator: passwords never pasted into a URL, healthchecks without a hard-coded port, restart
policies, loopback-only publishing unless ADMIN_TOKEN is required, bind-mounted files present.
With Docker at hand, `docker compose config -q` checks the same files further.

Usage: check_compose.py [ROOT]   (ROOT defaults to the repository); exit 1 lists every problem.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parent.parent
LONG_RUNNING = ("postgres", "vodarchiver", "prometheus", "grafana")
MONITORING = ("prometheus", "grafana")


class ComposeLoader(yaml.SafeLoader):
    """YAML with compose's merge tags (`!override`, `!reset`) read as their plain values."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


ComposeLoader.add_constructor("!override", _tagged)
ComposeLoader.add_constructor("!reset", _tagged)


def load(path: Path) -> dict[str, Any]:
    """A compose file as plain data."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=ComposeLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise TypeError(f"{path}: not a mapping")
    return data


def schema_problems(data: dict[str, Any], schema: dict[str, Any], name: str) -> list[str]:
    """Every violation of the Compose Specification's schema."""
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{name}: {'/'.join(str(p) for p in err.absolute_path) or '(top)'}: {err.message}"
        for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _ports(service: dict[str, Any]) -> list[str]:
    ports = service.get("ports", [])
    return [p if isinstance(p, str) else str(p.get("host_ip", "")) for p in ports]


def rule_problems(main: dict[str, Any], public: dict[str, Any], root: Path) -> list[str]:
    """The operator-facing promises, checked one by one."""
    services: dict[str, dict[str, Any]] = main.get("services", {})
    problems = _policy_problems(services)
    for name, service in services.items():
        problems += _service_problems(name, service, root)
    return problems + _public_problems(public)


def _policy_problems(services: dict[str, dict[str, Any]]) -> list[str]:
    """Restart policies, healthchecks that follow the settings, the monitoring profile."""
    problems: list[str] = []
    for name in LONG_RUNNING:
        service = services.get(name)
        if service is None:
            problems.append(f"compose.yaml: service {name} is missing")
        elif service.get("restart") != "unless-stopped":
            problems.append(f"compose.yaml: {name}: restart must be unless-stopped")
    for name in ("postgres", "vodarchiver"):
        check = services.get(name, {}).get("healthcheck", {}).get("test")
        if not check:
            problems.append(f"compose.yaml: {name}: no healthcheck")
        elif re.search(r"\b8080\b", json.dumps(check)):
            problems.append(f"compose.yaml: {name}: the healthcheck hard-codes port 8080")
    for name in MONITORING:
        if "monitoring" not in services.get(name, {}).get("profiles", []):
            problems.append(f"compose.yaml: {name} must be in the monitoring profile")
    return problems


def _service_problems(name: str, service: dict[str, Any], root: Path) -> list[str]:
    """No password in a URL, loopback-only ports, mounted files present."""
    problems: list[str] = []
    env = _env(service)
    url = env.get("DATABASE_URL", "")
    if re.search(r"://[^/@]*:[^/@]*@", url) or "${" in url:
        problems.append(
            f"compose.yaml: {name}: DATABASE_URL carries a password; pass DATABASE_PASSWORD"
        )
    if url and "DATABASE_PASSWORD" not in env:
        problems.append(f"compose.yaml: {name}: DATABASE_URL without DATABASE_PASSWORD")
    for port in _ports(service):
        if not port.startswith("127.0.0.1:"):
            problems.append(
                f"compose.yaml: {name}: publishes {port!r} beyond loopback; only "
                "deploy/compose.public.yaml may, with ADMIN_TOKEN required"
            )
    for volume in service.get("volumes", []):
        source = volume.split(":", 1)[0] if isinstance(volume, str) else ""
        if source.startswith("./deploy/") and not (root / source).exists():
            problems.append(f"compose.yaml: {name}: mounts {source}, which does not exist")
    return problems


def _public_problems(public: dict[str, Any]) -> list[str]:
    """The public overlay publishes beyond loopback only with ADMIN_TOKEN required."""
    problems: list[str] = []
    daemon = public.get("services", {}).get("vodarchiver", {})
    token = _env(daemon).get("ADMIN_TOKEN", "")
    if not re.fullmatch(r"\$\{ADMIN_TOKEN:\?[^}]+\}", token):
        problems.append("deploy/compose.public.yaml: ADMIN_TOKEN must be required (:?)")
    if not any(not p.startswith("127.0.0.1:") for p in _ports(daemon)):
        problems.append("deploy/compose.public.yaml: publishes nothing beyond loopback")
    return problems


def check(root: Path) -> list[str]:
    """Every problem of the compose files under `root`."""
    schema = json.loads((REPO / "deploy/schema/compose-spec.json").read_text(encoding="utf-8"))
    main = load(root / "compose.yaml")
    public = load(root / "deploy/compose.public.yaml")
    return [
        *schema_problems(main, schema, "compose.yaml"),
        *schema_problems(public, schema, "deploy/compose.public.yaml"),
        *rule_problems(main, public, root),
    ]


def main(argv: list[str]) -> int:
    """Print the problems; exit 1 when there are any."""
    root = Path(argv[1]) if len(argv) > 1 else REPO
    problems = check(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("compose files: valid (schema and rules)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
