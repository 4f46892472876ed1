"""The "Clipper overview" dashboard as shipped: Grafana's JSON model (rows, panels, a deploy
annotation), the rows an operator opens first, every query valid PromQL (promtool), and every
metric a query or an alert rule reads exported by a scrape target of the rendered
prometheus.yml (a catalogue built from the rendered Alloy config, the host scripts' textfile
metrics, and the exporters' documented metrics)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from clipper.backup_cli import METRIC_HELP as BACKUP_METRIC_HELP

from components.renderers import alloy, dashboard, grafana, prometheus
from components.renderers.monitoring_units import ETC_DIR
from components.settings import slugs
from tests.support.alloy_parse import parse_alloy
from tests.support.monitoring import (
    STACKS,
    monitoring_file,
    role_files,
    run_tool,
    stack_settings,
    write,
)

GRAFANA_PANEL = {
    "id", "type", "title", "datasource", "gridPos", "fieldConfig", "options", "targets",
    "description", "transparent", "interval", "collapsed", "panels",
}  # fmt: skip
GRAFANA_TARGET = {"refId", "datasource", "expr", "legendFormat", "instant", "format", "range"}
# Grafana's Prometheus annotation query fields (dashboard JSON model, "annotations").
GRAFANA_ANNOTATION = {
    "name", "datasource", "enable", "iconColor", "expr", "step", "titleFormat", "textFormat",
    "tagKeys", "useValueForTime", "hide", "builtIn", "type",
}  # fmt: skip
PANEL_TYPES = {"row", "timeseries", "table", "stat", "logs"}

# What each exporter serves that we read (node_exporter's cpu/meminfo/filesystem/textfile
# collectors; blackbox_exporter's probe metrics; DigitalOcean's managed-database endpoints as
# documented: postgres_exporter and redis_exporter names). Every target also has `up`.
NODE_EXPORTER = {
    "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
    "node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_textfile_scrape_error",
}  # fmt: skip
BLACKBOX_PROBE = {
    "probe_success", "probe_ssl_earliest_cert_expiry", "probe_duration_seconds",
    "probe_http_status_code",
}  # fmt: skip
MANAGED = {
    "managed_postgres": {"pg_stat_activity_count", "pg_up"},
    "managed_valkey": {
        "redis_memory_used_bytes", "redis_memory_max_bytes", "redis_evicted_keys_total",
        "redis_up",
    },
}  # fmt: skip
# Alloy's own (grafana/alloy v1.18 source: internal/runtime/internal/controller/metrics.go,
# internal/component/common/loki/client).
ALLOY_OWN = {
    "alloy_build_info", "alloy_component_controller_running_components",
    "loki_write_dropped_entries_total", "loki_write_sent_entries_total",
}  # fmt: skip
# clipper-release's textfile metrics: the release-metrics contract between the areas (the
# host script that writes them is the host package's).
RELEASE_CONTRACT = {
    "clipper_release_info", "clipper_release_last_change_timestamp_seconds",
    "clipper_release_last_attempt_success", "clipper_release_last_attempt_timestamp_seconds",
}  # fmt: skip
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def _dashboard(stack: str) -> dict[str, Any]:
    path = f"grafana/dashboards/{grafana.DASHBOARD_FILE_NAME}"
    return json.loads(monitoring_file(stack, path).content)


def _prometheus_queries(stack: str) -> list[str]:
    """Every PromQL the dashboard runs: panel targets and the annotation queries."""
    board = _dashboard(stack)
    exprs = [
        t["expr"] for p in board["panels"] for t in p.get("targets", [])
        if t["datasource"]["uid"] == grafana.PROMETHEUS_UID
    ]  # fmt: skip
    exprs += [a["expr"] for a in board["annotations"]["list"]]
    return exprs


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: strings, label matchers, grouping
    clauses, ranges and function names removed, what is left are metric names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$__\w+", " ", text)
    words = re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()", text)
    return {w for w in words if w.lower() not in PROMQL_WORDS}


def _alloy_metrics(stack: str) -> set[str]:
    text = role_files(stack, "app")[f"{ETC_DIR}/alloy/config.alloy"].content
    names: set[str] = set()

    def walk(blocks: list[Any]) -> None:
        for block in blocks:
            if block.name in ("metric.counter", "metric.gauge"):
                names.add(block.attributes["prefix"] + block.attributes["name"])
            if block.name == "metric.histogram":
                base = block.attributes["prefix"] + block.attributes["name"]
                names.update({f"{base}_bucket", f"{base}_sum", f"{base}_count"})
            walk(block.blocks)

    walk(parse_alloy(text))
    return names


def exported_metrics(stack: str) -> dict[str, set[str]]:
    """job -> the metrics its targets export, for the jobs the rendered prometheus.yml has."""
    config = yaml.safe_load(monitoring_file(stack, "prometheus/prometheus.yml").content)
    textfile = set(BACKUP_METRIC_HELP) | RELEASE_CONTRACT
    by_job: dict[str, set[str]] = {}
    for job in (j["job_name"] for j in config["scrape_configs"]):
        metrics = {"up"}
        if job == "node":
            metrics |= NODE_EXPORTER | textfile
        elif job == "alloy":
            metrics |= _alloy_metrics(stack) | ALLOY_OWN
        elif job in ("site", "data_stores"):
            metrics |= BLACKBOX_PROBE
        metrics |= MANAGED.get(job, set())
        by_job[job] = metrics
    return by_job


def _recorded(stack: str) -> set[str]:
    rules = yaml.safe_load(
        monitoring_file(stack, f"prometheus/rules/{prometheus.RULES_FILE_NAME}").content
    )
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'sum by (le) (rate(a_total{job="x", le=~"1|b"}[5m])) / on (instance) group_left (c)'
        ' b_info or vector(3) and absent(c{d="e"}) > bool 2'
    )
    assert metric_names(expr) == {"a_total", "b_info", "c"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_dashboard_and_rule_query_reads_metrics_a_scrape_target_exports(
    stack: str,
) -> None:
    by_job = exported_metrics(stack)
    everything = set().union(*by_job.values())
    rules = yaml.safe_load(
        monitoring_file(stack, f"prometheus/rules/{prometheus.RULES_FILE_NAME}").content
    )
    rule_exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    for expr in [*_prometheus_queries(stack), *rule_exprs]:
        missing = metric_names(expr) - everything - _recorded(stack)
        assert not missing, (expr, missing)
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job in by_job, (expr, job)
            assert metric_names(expr) & by_job[job], (expr, job)


def test_the_query_check_catches_a_metric_nobody_exports() -> None:
    by_job = exported_metrics("staging")
    everything = set().union(*by_job.values())
    assert metric_names("rate(clipper_nginx_http_request_total[5m])") - everything
    assert not metric_names(f"rate({prometheus.REQUESTS_METRIC}[5m])") - everything


@pytest.mark.parametrize("stack", STACKS)
def test_every_dashboard_query_is_valid_promql(stack: str, tmp_path: Path) -> None:
    """promtool parses each query as a recording rule ($__rate_interval is Grafana's,
    substituted with a duration)."""
    exprs = [e.replace("$__rate_interval", "5m") for e in _prometheus_queries(stack)]
    assert len(exprs) >= 20
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": e} for n, e in enumerate(exprs)
    ]}]}  # fmt: skip
    result = run_tool(
        ["promtool", "check", "rules", str(write(tmp_path / "q.yml", yaml.safe_dump(rules)))]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_the_dashboard_follows_grafanas_json_model(stack: str) -> None:
    board = _dashboard(stack)
    assert board["uid"] == dashboard.UID and isinstance(board["schemaVersion"], int)
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert set(panel) <= GRAFANA_PANEL, panel["title"]
        assert panel["type"] in PANEL_TYPES
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(set(refs)) == len(refs)
        for target in panel.get("targets", []):
            assert set(target) <= GRAFANA_TARGET
            assert target["datasource"]["uid"] in (grafana.PROMETHEUS_UID, grafana.LOKI_UID)
    for annotation in board["annotations"]["list"]:
        assert set(annotation) <= GRAFANA_ANNOTATION


def _rows(stack: str) -> dict[str, list[dict[str, Any]]]:
    """Row title -> the panels under it, in order."""
    rows: dict[str, list[dict[str, Any]]] = {}
    current = ""
    for panel in _dashboard(stack)["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = []
        elif current:
            rows[current].append(panel)
    return rows


@pytest.mark.parametrize("stack", STACKS)
def test_the_rows_an_operator_opens_first(stack: str) -> None:
    rows = _rows(stack)
    assert list(rows) == ["Traffic", "Latency", "Releases", "Data stores", "Hosts", "Backups"]
    titles = {row: " | ".join(p["title"] for p in panels).lower() for row, panels in rows.items()}
    assert "request rate by route group" in titles["Traffic"]
    assert "error ratio" in titles["Traffic"]
    for needed in ("serving release per host", "deploy attempt"):
        assert needed in titles["Releases"]
    for needed in ("database connections vs limit", "cache memory", "cache evictions"):
        assert needed in titles["Data stores"]
    for needed in ("cpu", "memory", "disk"):
        assert needed in titles["Hosts"]
    assert "backup" in titles["Backups"] and "drill" in titles["Backups"]


@pytest.mark.parametrize("stack", STACKS)
def test_latency_is_shown_per_route_group_with_three_quantiles(stack: str) -> None:
    latency = _rows(stack)["Latency"]
    assert [p["title"] for p in latency] == [
        "API latency", "SEO latency", "SPA latency", "WebSocket connection lifetime",
    ]  # fmt: skip
    for panel, group in zip(latency, ("api", "seo", "spa", "websocket"), strict=True):
        assert [t["legendFormat"] for t in panel["targets"]] == ["p50", "p95", "p99"]
        for target in panel["targets"]:
            assert f'route_group="{group}"' in target["expr"]
            assert group in alloy.ROUTE_GROUPS


@pytest.mark.parametrize("stack", STACKS)
def test_the_database_panel_draws_the_clusters_connection_limit(stack: str) -> None:
    (panel,) = [p for p in _rows(stack)["Data stores"] if p["title"].startswith("Database")]
    limit = slugs.postgres_connection_limit(stack_settings(stack).db_size)
    assert {t["legendFormat"]: t["expr"] for t in panel["targets"]}["limit"] == f"vector({limit})"


@pytest.mark.parametrize("stack", STACKS)
def test_deploys_are_annotations_with_release_and_colour(stack: str) -> None:
    (deploys,) = _dashboard(stack)["annotations"]["list"]
    assert deploys["enable"] is True and deploys["datasource"]["uid"] == grafana.PROMETHEUS_UID
    assert prometheus.RELEASE_CHANGE_METRIC in deploys["expr"]
    assert "group_left (release, color)" in deploys["expr"]
    assert "{{release}}" in deploys["textFormat"] and "{{host}}" in deploys["titleFormat"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_release_table_reads_the_serving_release_and_colour_per_host(stack: str) -> None:
    (table,) = [p for p in _rows(stack)["Releases"] if p["type"] == "table"]
    (target,) = table["targets"]
    assert target["instant"] is True and target["format"] == "table"
    assert target["expr"] == f"max by (host, color, release) ({prometheus.RELEASE_INFO_METRIC})"


@pytest.mark.parametrize("stack", STACKS)
def test_the_log_panel_selects_labels_that_alloy_sets(stack: str) -> None:
    (logs,) = [p for p in _dashboard(stack)["panels"] if p["type"] == "logs"]
    assert logs["targets"][0]["expr"] == '{job="nginx", status_class="5xx"}'
    text = role_files(stack, "app")[f"{ETC_DIR}/alloy/config.alloy"].content
    assert 'job      = "nginx"' in text and "status_class" in text
