"""Grafana on the monitoring host: provisioned data sources (Prometheus, Loki), a dashboard
provider, the "Clipper overview" dashboard, and the server settings (as GF_* environment).

Grafana listens on 127.0.0.1 only: operators reach it through an SSH tunnel
(`ssh -L 3000:127.0.0.1:3000 deploy@<monitoring host>`), never from the internet. The admin
password comes from pulumi-random and is read from a 0600 file (GF_SECURITY_ADMIN_PASSWORD__FILE).
No Grafana binary is packaged for Debian: tests check these files against Grafana's documented
provisioning fields and check every dashboard query with promtool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from components.host_layout import LOKI_PORT
from components.renderers.prometheus import (
    DURATION_METRIC,
    GRAFANA_PORT,
    POSTGRES_CONNECTIONS_METRIC,
    PROMETHEUS_PORT,
    REQUESTS_METRIC,
)
from components.settings import Settings

# Inside the Grafana container.
PROVISIONING_DIR = "/etc/grafana/provisioning"
DASHBOARDS_DIR = "/var/lib/grafana-dashboards"
ADMIN_PASSWORD_FILE = "/run/secrets/grafana-admin-password"  # noqa: S105 (a path)
ADMIN_USER = "admin"

PROMETHEUS_UID = "clipper-prometheus"
LOKI_UID = "clipper-loki"
DASHBOARD_UID = "clipper-overview"
DASHBOARD_FILE_NAME = "clipper-overview.json"
# The dashboard JSON model version this file is written for (Grafana 11).
SCHEMA_VERSION = 39


def render_grafana_env(settings: Settings) -> str:
    """The container's environment file: loopback only, no sign-up, no anonymous access, no
    phoning home; the admin password from a file."""
    values = {
        "GF_SERVER_HTTP_ADDR": "127.0.0.1",
        "GF_SERVER_HTTP_PORT": str(GRAFANA_PORT),
        "GF_SERVER_DOMAIN": "localhost",
        "GF_SECURITY_ADMIN_USER": ADMIN_USER,
        "GF_SECURITY_ADMIN_PASSWORD__FILE": ADMIN_PASSWORD_FILE,
        "GF_SECURITY_DISABLE_GRAVATAR": "true",
        "GF_SECURITY_COOKIE_SAMESITE": "strict",
        "GF_USERS_ALLOW_SIGN_UP": "false",
        "GF_AUTH_ANONYMOUS_ENABLED": "false",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_PATHS_PROVISIONING": PROVISIONING_DIR,
        "GF_LOG_MODE": "console",
        "GF_LOG_LEVEL": "warn",
    }
    lines = [f"# Grafana for clipper {settings.environment}; components/renderers/grafana.py"]
    lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def render_datasources(settings: Settings, *, loki_address: str) -> str:
    """provisioning/datasources/clipper.yml: Prometheus (default) and Loki, read-only in the UI."""
    document = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": PROMETHEUS_UID,
                "access": "proxy",
                "url": f"http://127.0.0.1:{PROMETHEUS_PORT}",
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": "30s", "httpMethod": "POST"},
            },
            {
                "name": "Loki",
                "type": "loki",
                "uid": LOKI_UID,
                "access": "proxy",
                "url": f"http://{loki_address}:{LOKI_PORT}",
                "isDefault": False,
                "editable": False,
                "jsonData": {"maxLines": 1000},
            },
        ],
    }
    header = f"# Grafana data sources for clipper {settings.environment}.\n"
    return header + yaml.safe_dump(document, sort_keys=False)


def render_dashboard_provider(settings: Settings) -> str:
    """provisioning/dashboards/clipper.yml: load the dashboards from DASHBOARDS_DIR."""
    document = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "clipper",
                "orgId": 1,
                "folder": "Clipper",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": DASHBOARDS_DIR},
            }
        ],
    }
    header = f"# Grafana dashboards for clipper {settings.environment}, from files.\n"
    return header + yaml.safe_dump(document, sort_keys=False)


@dataclass(frozen=True)
class Panel:
    """One time-series panel: a title, a unit and its PromQL queries (legend per query)."""

    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (expr, legend)


def dashboard_panels() -> tuple[Panel, ...]:
    """The overview's panels, in order (the tests check every query with promtool)."""
    rate = "$__rate_interval"
    requests = f"sum by (status_class) (rate({REQUESTS_METRIC}[{rate}]))"
    errors = (
        f'sum(rate({REQUESTS_METRIC}{{status_class="5xx"}}[{rate}]))'
        f" / sum(rate({REQUESTS_METRIC}[{rate}]))"
    )
    client_errors = (
        f'sum(rate({REQUESTS_METRIC}{{status_class="4xx"}}[{rate}]))'
        f" / sum(rate({REQUESTS_METRIC}[{rate}]))"
    )

    def quantile(q: str) -> tuple[str, str]:
        expr = f"histogram_quantile({q}, sum by (le) (rate({DURATION_METRIC}_bucket[{rate}])))"
        return expr, f"p{q[2:]}"

    return (
        Panel("Request rate by status", "reqps", ((requests, "{{status_class}}"),)),
        Panel("Error rate", "percentunit", ((errors, "5xx"), (client_errors, "4xx"))),
        Panel("Latency", "s", (quantile("0.50"), quantile("0.95"), quantile("0.99"))),
        Panel(
            "CPU busy per host",
            "percent",
            (
                (
                    "100 * (1 - avg by (host) "
                    f'(rate(node_cpu_seconds_total{{mode="idle"}}[{rate}])))',
                    "{{host}}",
                ),
            ),
        ),
        Panel(
            "Memory used per host",
            "percent",
            (
                (
                    "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
                    "{{host}}",
                ),
            ),
        ),
        Panel(
            "Disk used per host",
            "percent",
            (
                (
                    '100 * (1 - node_filesystem_avail_bytes{mountpoint=~"/|/srv/monitoring"}'
                    ' / node_filesystem_size_bytes{mountpoint=~"/|/srv/monitoring"})',
                    "{{host}} {{mountpoint}}",
                ),
            ),
        ),
        Panel(
            "Database connections",
            "short",
            (
                (
                    f'sum by (instance) ({POSTGRES_CONNECTIONS_METRIC}{{job="managed_postgres"}})',
                    "{{instance}}",
                ),
            ),
        ),
        Panel(
            "Probes (1 = up)",
            "short",
            (
                ('probe_success{job="site"}', "site"),
                ('probe_success{job="data_stores"}', "{{service}}"),
            ),
        ),
        Panel(
            "TLS certificate days left",
            "d",
            (('(probe_ssl_earliest_cert_expiry{job="site"} - time()) / 86400', "days"),),
        ),
    )


def _panel(panel_id: int, panel: Panel) -> dict[str, Any]:
    width, height = 12, 8
    index = panel_id - 1
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "datasource": {"type": "prometheus", "uid": PROMETHEUS_UID},
        "gridPos": {"h": height, "w": width, "x": (index % 2) * width, "y": (index // 2) * height},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": {"type": "prometheus", "uid": PROMETHEUS_UID},
                "expr": expr,
                "legendFormat": legend,
            }
            for n, (expr, legend) in enumerate(panel.queries)
        ],
    }


def render_overview_dashboard(settings: Settings) -> str:
    """The "Clipper overview" dashboard JSON: requests, errors, latency, hosts, data stores,
    probes, and the nginx access log (Loki) under them."""
    panels = [_panel(n, p) for n, p in enumerate(dashboard_panels(), 1)]
    log_id = len(panels) + 1
    panels.append(
        {
            "id": log_id,
            "type": "logs",
            "title": "nginx 5xx responses",
            "datasource": {"type": "loki", "uid": LOKI_UID},
            "gridPos": {"h": 10, "w": 24, "x": 0, "y": ((log_id - 1 + 1) // 2) * 8},
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
    dashboard = {
        "uid": DASHBOARD_UID,
        "title": f"Clipper overview ({settings.environment})",
        "tags": ["clipper", settings.environment],
        "timezone": "utc",
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }
    return json.dumps(dashboard, indent=2, sort_keys=False) + "\n"
