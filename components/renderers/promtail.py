"""Promtail on each app host: ships logs to Loki and turns nginx's JSON access log into the
request metrics Prometheus alerts on.

Why Promtail rather than Grafana Alloy: its config is plain YAML with documented fields that a
test can check offline (Alloy's River syntax has no checker here), and its `metrics` pipeline
stage gives exactly the counter and histogram we need. Promtail is in long-term support only;
`alloy convert --source-format=promtail` turns this file into Alloy's config when we move.

What it reads (host paths mounted read-only into the container):
- host_layout.NGINX_ACCESS_LOG (nginx's `clipper_json` format, components/renderers/nginx.py):
  labels `status_class` (2xx..5xx) and `route` (backend/frontend), and the metrics
  `clipper_nginx_http_requests_total{status_class,route}` and
  `clipper_nginx_http_request_duration_seconds` (from `request_time`; WebSocket upgrades,
  status 101, are left out: their duration is the connection's lifetime);
- the containers' json-file logs (the backend and frontend of each colour, migrations);
- the systemd journal (sshd, fail2ban, the Valkey tunnel, cloud-init).

The file is the same on every app host: the host name comes from the `HOST` environment
variable (`-config.expand-env=true`), which the systemd unit sets to the droplet's name.
No Promtail binary is packaged for Debian: tests check the structure, and that every field the
pipeline reads exists in the nginx log format.
"""

from __future__ import annotations

from typing import Any

import yaml

from components.host_layout import LOKI_PORT, NGINX_ACCESS_LOG, PROMTAIL_METRICS_PORT
from components.settings import Settings

# Inside the Promtail container.
CONFIG_DIR = "/etc/promtail"
CONFIG_FILE = f"{CONFIG_DIR}/promtail.yml"
POSITIONS_DIR = "/promtail"
DOCKER_CONTAINERS_DIR = "/var/lib/docker/containers"
JOURNAL_DIR = "/var/log/journal"

METRIC_PREFIX = "clipper_nginx_"
# Seconds; 0.5 is a boundary so the p95 > 500 ms alert reads an exact bucket.
DURATION_BUCKETS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Fields of nginx's clipper_json log the pipeline reads.
ACCESS_LOG_FIELDS: tuple[str, ...] = ("time", "status", "request_time", "route", "method")
# Series stay exported a day without traffic, so a quiet night does not reset the counters.
MAX_IDLE = "24h"


def loki_push_url(loki_address: str) -> str:
    """Loki's push endpoint on the monitoring host's private address."""
    return f"http://{loki_address}:{LOKI_PORT}/loki/api/v1/push"


def _nginx_job(settings: Settings) -> dict[str, Any]:
    request_counter = {
        "http_requests_total": {
            "type": "Counter",
            "description": "Requests nginx answered, by status class and route.",
            "prefix": METRIC_PREFIX,
            "max_idle_duration": MAX_IDLE,
            "config": {"match_all": True, "action": "inc"},
        }
    }
    duration_histogram = {
        "http_request_duration_seconds": {
            "type": "Histogram",
            "description": "nginx request_time: first byte read to last byte sent, seconds.",
            "source": "request_time",
            "prefix": METRIC_PREFIX,
            "max_idle_duration": MAX_IDLE,
            "config": {"buckets": list(DURATION_BUCKETS)},
        }
    }
    return {
        "job_name": "nginx",
        "static_configs": [
            {
                "targets": ["localhost"],
                "labels": {"job": "nginx", "host": "${HOST}", "__path__": NGINX_ACCESS_LOG},
            }
        ],
        "pipeline_stages": [
            {"json": {"expressions": {field: field for field in ACCESS_LOG_FIELDS}}},
            # "503" -> "5" -> "5xx": a low-cardinality label for the error-rate ratio.
            {"regex": {"source": "status", "expression": "^(?P<status_class>[1-5])"}},
            {"template": {"source": "status_class", "template": "{{ .Value }}xx"}},
            {"labels": {"status_class": None, "route": None}},
            {"timestamp": {"source": "time", "format": "RFC3339"}},
            {"metrics": request_counter},
            {
                "match": {
                    "selector": '{job="nginx", status_class!="1xx"}',
                    "stages": [{"metrics": duration_histogram}],
                }
            },
        ],
    }


def render_promtail_config(settings: Settings, *, loki_address: str) -> str:
    """promtail.yml for every app host; `loki_address` is the monitoring host's private IPv4."""
    config: dict[str, Any] = {
        "server": {
            # Reachable from the VPC only (ufw and the cloud firewall): Prometheus scrapes it.
            "http_listen_address": "0.0.0.0",  # noqa: S104
            "http_listen_port": PROMTAIL_METRICS_PORT,
            "grpc_listen_port": 0,
            "log_level": "warn",
        },
        "positions": {"filename": f"{POSITIONS_DIR}/positions.yaml"},
        "clients": [
            {
                "url": loki_push_url(loki_address),
                "external_labels": {"environment": settings.environment},
                "backoff_config": {"min_period": "1s", "max_period": "1m", "max_retries": 20},
            }
        ],
        "scrape_configs": [
            _nginx_job(settings),
            {
                "job_name": "containers",
                "static_configs": [
                    {
                        "targets": ["localhost"],
                        "labels": {
                            "job": "containers",
                            "host": "${HOST}",
                            "__path__": f"{DOCKER_CONTAINERS_DIR}/*/*-json.log",
                        },
                    }
                ],
                "pipeline_stages": [{"docker": {}}],
            },
            {
                "job_name": "journal",
                "journal": {
                    "path": JOURNAL_DIR,
                    "max_age": "12h",
                    "labels": {"job": "journal", "host": "${HOST}"},
                },
                "relabel_configs": [
                    {"source_labels": ["__journal__systemd_unit"], "target_label": "unit"}
                ],
            },
        ],
    }
    header = (
        f"# Promtail for clipper {settings.environment} app hosts; rendered by"
        " components/renderers/promtail.py. ${HOST} is expanded at start (-config.expand-env).\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=100)
