"""Metric names in PromQL expressions and in a `/metrics` page, for the deploy/ checks.

Not a PromQL parser: our expressions use selectors, label matchers, ranges, aggregations and
functions only, so removing strings, matchers, ranges and grouping clauses leaves metric names,
function names (followed by `(`), keywords and numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy/grafana/dashboards/vodarchiver.json"
ALERTS = REPO / "deploy/prometheus/alerts.yml"

KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "group_left",
    "group_right",
    "NaN",
    "Inf",
    "inf",
    "nan",
}
# Series Prometheus itself adds to every scrape target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    text = re.sub(r"\b\d[\w.]*", " ", text)  # numbers and durations (5m, 1e9)
    names: set[str] = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a `/metrics` page can carry, labelled metrics without samples included."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) for every query of the shipped dashboard."""
    board: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of the shipped alert file."""
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]
