"""The "Clipper overview" Grafana dashboard: what an operator opens first, one row per
question (is the site answering, how fast per route group, which release serves where, are the
data stores near a limit, are the hosts healthy, are the backups restorable), deploy markers as
annotations, and nginx's 5xx log lines (Loki) at the bottom.

Every query reads metrics that a scrape target in the rendered prometheus.yml exports (the
tests check each name against that catalogue, and each query with promtool).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from components.renderers.grafana import LOKI_UID, PROMETHEUS_UID
from components.renderers.prometheus import (
    BACKUP_METRIC,
    DRILL_METRIC,
    DURATION_METRIC,
    POSTGRES_CONNECTIONS_METRIC,
    RELEASE_ATTEMPT_SUCCESS_METRIC,
    RELEASE_CHANGE_METRIC,
    RELEASE_INFO_METRIC,
    REQUESTS_METRIC,
    VALKEY_EVICTIONS_METRIC,
    VALKEY_MEMORY_LIMIT_METRIC,
    VALKEY_MEMORY_METRIC,
    WEBSOCKET_DURATION_METRIC,
)
from components.settings import Settings, slugs

UID = "clipper-overview"
# Grafana's dashboard JSON model (v1) as Grafana 12/13 write it; 13 still loads v1 files.
SCHEMA_VERSION = 41
RATE = "$__rate_interval"
GRID_WIDTH = 24
PANEL_HEIGHT = 8


@dataclass(frozen=True)
class Query:
    """One PromQL target: the expression and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A time series (or, `table=True`, an instant table) of PromQL queries."""

    title: str
    unit: str
    queries: tuple[Query, ...]
    width: int = 12
    table: bool = False
    description: str = ""


@dataclass(frozen=True)
class Row:
    """A titled row of panels; `summary` says what the row answers (README, the report)."""

    title: str
    summary: str
    panels: tuple[Panel, ...]


# The route groups the dashboard splits latency by (components/renderers/alloy.py sets them).
LATENCY_GROUPS: tuple[tuple[str, str], ...] = (("api", "API"), ("seo", "SEO"), ("spa", "SPA"))


def _quantiles(metric: str, selector: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"p{q[2:]}",
        )
        for q in ("0.50", "0.95", "0.99")
    )


def _traffic() -> Row:
    per_group = f"sum by (route_group) (rate({REQUESTS_METRIC}[{RATE}]))"
    errors = f'sum by (route_group) (rate({REQUESTS_METRIC}{{status_class="5xx"}}[{RATE}]))'
    return Row(
        "Traffic",
        "requests per second and the 5xx ratio, per route group (API, WebSocket, SEO, SPA,"
        " health checks, nginx itself)",
        (
            Panel("Request rate by route group", "reqps", (Query(per_group, "{{route_group}}"),)),
            Panel(
                "Error ratio (5xx) by route group",
                "percentunit",
                (Query(f"{errors} / {per_group}", "{{route_group}}"),),
            ),
        ),
    )


def _latency() -> Row:
    panels = [
        Panel(f"{label} latency", "s", _quantiles(DURATION_METRIC, f'route_group="{group}"'),
              width=6)
        for group, label in LATENCY_GROUPS
    ]  # fmt: skip
    panels.append(
        Panel(
            "WebSocket connection lifetime",
            "s",
            _quantiles(WEBSOCKET_DURATION_METRIC, 'route_group="websocket"'),
            width=6,
            description="How long WebSockets stay open (a drop means clients are cut off).",
        )
    )
    return Row(
        "Latency",
        "p50/p95/p99 of nginx request_time for API, SEO and SPA requests; WebSocket"
        " connections' lifetime",
        tuple(panels),
    )


def _releases() -> Row:
    return Row(
        "Releases",
        "the serving release and colour per host, the last deploy attempt's result, time since"
        " the last switch (deploys are also markers on every panel)",
        (
            Panel(
                "Serving release per host",
                "short",
                (Query(f"max by (host, color, release) ({RELEASE_INFO_METRIC})"),),
                table=True,
            ),
            Panel(
                "Last deploy attempt succeeded (1) or failed (0)",
                "short",
                (Query(f"max by (host) ({RELEASE_ATTEMPT_SUCCESS_METRIC})", "{{host}}"),),
                width=6,
            ),
            Panel(
                "Time since the last release switch",
                "s",
                (Query(f"time() - max by (host) ({RELEASE_CHANGE_METRIC})", "{{host}}"),),
                width=6,
            ),
        ),
    )


def _data_stores(settings: Settings) -> Row:
    limit = slugs.postgres_connection_limit(settings.db_size)
    return Row(
        "Data stores",
        f"PostgreSQL connections against the cluster's limit ({settings.db_size}), Valkey"
        " memory against its maximum and evictions, the TCP probes",
        (
            Panel(
                "Database connections vs limit",
                "short",
                (
                    Query(
                        f'sum({POSTGRES_CONNECTIONS_METRIC}{{job="managed_postgres"}})',
                        "connections",
                    ),
                    Query(f"vector({limit})", "limit"),
                ),
                width=6,
            ),
            Panel(
                "Cache memory",
                "bytes",
                (
                    Query(f'max({VALKEY_MEMORY_METRIC}{{job="managed_valkey"}})', "used"),
                    Query(f'max({VALKEY_MEMORY_LIMIT_METRIC}{{job="managed_valkey"}})', "max"),
                ),
                width=6,
            ),
            Panel(
                "Cache evictions",
                "ops",
                (
                    Query(
                        f'sum(rate({VALKEY_EVICTIONS_METRIC}{{job="managed_valkey"}}[{RATE}]))',
                        "evicted keys/s",
                    ),
                ),
                width=6,
            ),
            Panel(
                "Probes (1 = up)",
                "short",
                (
                    Query('probe_success{job="site"}', "site"),
                    Query('probe_success{job="data_stores"}', "{{service}}"),
                ),
                width=6,
            ),
        ),
    )


def _hosts() -> Row:
    mounts = 'mountpoint=~"/|/srv/monitoring"'
    return Row(
        "Hosts",
        "CPU, memory and disk per droplet; days left on the site's TLS certificate",
        (
            Panel(
                "CPU busy per host",
                "percent",
                (
                    Query(
                        "100 * (1 - avg by (host) "
                        f'(rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}])))',
                        "{{host}}",
                    ),
                ),
                width=6,
            ),
            Panel(
                "Memory used per host",
                "percent",
                (
                    Query(
                        "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
                        "{{host}}",
                    ),
                ),
                width=6,
            ),
            Panel(
                "Disk used per host",
                "percent",
                (
                    Query(
                        f"100 * (1 - node_filesystem_avail_bytes{{{mounts}}}"
                        f" / node_filesystem_size_bytes{{{mounts}}})",
                        "{{host}} {{mountpoint}}",
                    ),
                ),
                width=6,
            ),
            Panel(
                "TLS certificate days left",
                "d",
                (Query('(probe_ssl_earliest_cert_expiry{job="site"} - time()) / 86400', "days"),),
                width=6,
            ),
        ),
    )


def _backups() -> Row:
    return Row(
        "Backups",
        "age of the last successful backup and of the last passing restore drill",
        (
            Panel(
                "Last successful backup, age",
                "s",
                (Query(f"time() - max by (host) ({BACKUP_METRIC})", "{{host}}"),),
            ),
            Panel(
                "Last passing restore drill, age",
                "s",
                (Query(f"time() - max by (host) ({DRILL_METRIC})", "{{host}}"),),
            ),
        ),
    )


def dashboard_rows(settings: Settings) -> tuple[Row, ...]:
    """The overview's rows, top to bottom (the logs panel follows them)."""
    return (_traffic(), _latency(), _releases(), _data_stores(settings), _hosts(), _backups())


def deploy_marker_query() -> str:
    """The annotation query: a point wherever a host switched releases, carrying the new
    release and colour from the release info metric."""
    return (
        f"(changes({RELEASE_CHANGE_METRIC}[2m]) > 0)"
        f" * on (instance) group_left (release, color) {RELEASE_INFO_METRIC}"
    )


def _prometheus() -> dict[str, str]:
    return {"type": "prometheus", "uid": PROMETHEUS_UID}


def _target(n: int, query: Query, *, table: bool) -> dict[str, Any]:
    target: dict[str, Any] = {
        "refId": chr(ord("A") + n),
        "datasource": _prometheus(),
        "expr": query.expr,
        "legendFormat": query.legend,
    }
    if table:
        target |= {"instant": True, "format": "table"}
    return target


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": panel_id,
        "type": "table" if panel.table else "timeseries",
        "title": panel.title,
        "datasource": _prometheus(),
        "gridPos": {"h": PANEL_HEIGHT, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {}
        if panel.table
        else {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [_target(n, q, table=panel.table) for n, q in enumerate(panel.queries)],
    }
    if panel.description:
        body["description"] = panel.description
    return body


def _layout(rows: tuple[Row, ...]) -> tuple[list[dict[str, Any]], int]:
    """Grafana's grid: each row a one-unit header, its panels left to right, wrapping at 24."""
    panels: list[dict[str, Any]] = []
    y = 0
    for row in rows:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": row.title,
                "description": row.summary,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y = 0, y + PANEL_HEIGHT
            panels.append(_panel(len(panels) + 1, panel, x, y))
            x += panel.width
        y += PANEL_HEIGHT
    return panels, y


def render_overview_dashboard(settings: Settings) -> str:
    """The "Clipper overview" dashboard JSON."""
    panels, y = _layout(dashboard_rows(settings))
    panels.append(
        {
            "id": len(panels) + 1,
            "type": "logs",
            "title": "nginx 5xx responses",
            "datasource": {"type": "loki", "uid": LOKI_UID},
            "gridPos": {"h": 10, "w": GRID_WIDTH, "x": 0, "y": y},
            "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending"},
            "targets": [
                {
                    "refId": "A",
                    "datasource": {"type": "loki", "uid": LOKI_UID},
                    "expr": '{job="nginx", status_class="5xx"}',
                }
            ],
        }
    )
    deploys = {
        "name": "Deploys",
        "datasource": _prometheus(),
        "enable": True,
        "iconColor": "blue",
        "expr": deploy_marker_query(),
        "step": "1m",
        "titleFormat": "Deploy on {{host}}",
        "textFormat": "{{release}} ({{color}})",
        "tagKeys": "host,color",
        "useValueForTime": False,
    }
    dashboard = {
        "uid": UID,
        "title": f"Clipper overview ({settings.environment})",
        "tags": ["clipper", settings.environment],
        "timezone": "utc",
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": [deploys]},
        "panels": panels,
    }
    return json.dumps(dashboard, indent=2, sort_keys=False) + "\n"
