"""Grafana on the monitoring host: provisioned data sources (Prometheus, Loki), a dashboard
provider, and the server settings (as GF_* environment). The "Clipper overview" dashboard
itself is components/renderers/dashboard.py.

Grafana listens on 127.0.0.1 only: operators reach it through an SSH tunnel
(`ssh -L 3000:127.0.0.1:3000 deploy@<monitoring host>`), never from the internet. The admin
password comes from pulumi-random and is read from a 0600 file (GF_SECURITY_ADMIN_PASSWORD__FILE).
No Grafana binary is packaged for Debian: tests check these files against Grafana's documented
provisioning fields and check every dashboard query with promtool.
"""

from __future__ import annotations

import yaml

from components.host.layout import LOKI_PORT
from components.renderers.prometheus import GRAFANA_PORT, PROMETHEUS_PORT
from components.settings import Settings

# Inside the Grafana container.
PROVISIONING_DIR = "/etc/grafana/provisioning"
DASHBOARDS_DIR = "/var/lib/grafana-dashboards"
ADMIN_PASSWORD_FILE = "/run/secrets/grafana-admin-password"  # noqa: S105 (a path)
ADMIN_USER = "admin"

PROMETHEUS_UID = "clipper-prometheus"
LOKI_UID = "clipper-loki"
DASHBOARD_FILE_NAME = "clipper-overview.json"


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
