"""Prometheus on the monitoring host: what it scrapes, and the alert rules of the operators'
checklist ("Alerts": error rate, slow responses, server down, database connection issues,
memory/CPU, disk space, TLS expiry; plus backup freshness).

Where the numbers come from:
- request metrics: Grafana Alloy on each app host turns nginx's JSON access log into
  `clipper_nginx_http_requests_total{status_class,route_group}` and
  `clipper_nginx_http_request_duration_seconds` (components/renderers/alloy.py). The
  backend's own /debug/metrics is behind admin auth, so the edge's log is the source;
- hosts: node_exporter on every droplet (Ubuntu's prometheus-node-exporter, port 9100, VPC only),
  with the host scripts' textfile metrics: clipper-backup's (backups and restore drills) and
  clipper-release's (the serving release and colour, deploy attempts);
- the site: blackbox_exporter probes `https://<domain>/health/ready` (status, latency, TLS
  certificate expiry) and opens TCP connections to the managed PostgreSQL, pool and Valkey;
- managed data stores: DigitalOcean's Prometheus endpoint of each cluster (account-wide basic
  auth credentials, `digitalocean.get_database_metrics_credentials`), read from a 0600 file.

Every file path in the rendered config is where the Prometheus container sees it
(monitoring_units.py mounts them).

Written for Prometheus 3 (the 3.5 LTS line). What changed from 2.x and matters here: a scrape
whose Content-Type is missing or unknown fails unless the job names a
`fallback_scrape_protocol` (set for DigitalOcean's endpoints, whose header we cannot check);
Alertmanager is spoken to over API v2 only (stated); range selectors are left-open and `le`
labels are normalised to floats (no rule here matches a bucket by its `le` text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from components.host.layout import ALLOY_HTTP_PORT, LOKI_PORT, NODE_EXPORTER_PORT
from components.renderers import alloy
from components.settings import Settings, slugs

# Inside the Prometheus container (monitoring_units.py mounts the host directories here).
CONFIG_DIR = "/etc/prometheus"
CONFIG_FILE = f"{CONFIG_DIR}/prometheus.yml"
RULES_FILE_NAME = "clipper.rules.yml"
SECRETS_DIR = "/run/secrets"
DB_METRICS_PASSWORD_FILE = f"{SECRETS_DIR}/db-metrics-password"

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
BLACKBOX_PORT = 9115
# DigitalOcean's managed-database metrics endpoint (HTTPS, basic auth) on each cluster's host.
DATABASE_METRICS_PORT = 9273

SCRAPE_INTERVAL = "30s"
HEALTH_PATH = "/health/ready"

# The checklist's thresholds (seed/production-infrastructure-checklist.md, "Alerts").
ERROR_RATE_RATIO = 0.05  # 5xx above 5% of requests over 5 minutes
LATENCY_P95_SECONDS = 0.5  # p95 above 500 ms
TLS_EXPIRY_DAYS = 14
# Below this rate (requests/s over 5 minutes) one failed request is not an "error rate".
ERROR_RATE_MIN_RPS = 0.1
DB_CONNECTIONS_RATIO = 0.8  # of the cluster's connection limit (slugs.postgres_connection_limit)
BACKUP_MAX_AGE_HOURS = 26  # a daily backup, plus two hours of slack
# DigitalOcean's endpoint exposes postgres_exporter-style series; if a deployment shows another
# name for the backend count, change it here (the rule tests follow).
POSTGRES_CONNECTIONS_METRIC = "pg_stat_activity_count"
# Written by hostscripts/clipper-backup into node_exporter's textfile collector.
BACKUP_METRIC = "clipper_backup_last_success_timestamp_seconds"
BACKUP_FAILURE_METRIC = "clipper_backup_last_failure_timestamp_seconds"

DRILL_METRIC = "clipper_backup_drill_last_success_timestamp_seconds"
DRILL_FAILURE_METRIC = "clipper_backup_drill_last_failure_timestamp_seconds"
# The drill runs weekly (backup_units.DRILL_SCHEDULE, up to 4 h); a day of slack on top.
DRILL_MAX_AGE_HOURS = 7 * 24 + 24
# Written by hostscripts/clipper-release (the release-metrics contract, clipper_release.prom).
RELEASE_INFO_METRIC = "clipper_release_info"
RELEASE_CHANGE_METRIC = "clipper_release_last_change_timestamp_seconds"
RELEASE_ATTEMPT_SUCCESS_METRIC = "clipper_release_last_attempt_success"
RELEASE_ATTEMPT_METRIC = "clipper_release_last_attempt_timestamp_seconds"
# DigitalOcean's managed Valkey endpoint exposes redis_exporter-style series (as documented;
# like the PostgreSQL names above, not yet checked against a live cluster).
VALKEY_MEMORY_METRIC = "redis_memory_used_bytes"
VALKEY_MEMORY_LIMIT_METRIC = "redis_memory_max_bytes"
VALKEY_EVICTIONS_METRIC = "redis_evicted_keys_total"

REQUESTS_METRIC = alloy.METRIC_PREFIX + alloy.REQUESTS_NAME
DURATION_METRIC = alloy.METRIC_PREFIX + alloy.DURATION_NAME
WEBSOCKET_DURATION_METRIC = alloy.METRIC_PREFIX + alloy.WEBSOCKET_NAME
# Alloy's own metrics (grafana/alloy v1.18: the component controller, loki.write's client).
ALLOY_COMPONENTS_METRIC = "alloy_component_controller_running_components"
ALLOY_DROPPED_METRIC = "loki_write_dropped_entries_total"
# Prometheus 3 refuses a scrape without a valid Content-Type unless the job names a fallback.
FALLBACK_SCRAPE_PROTOCOL = "PrometheusText0.0.4"


@dataclass(frozen=True)
class ScrapeHost:
    """A droplet Prometheus scrapes over the VPC: a short name and its private IPv4."""

    name: str
    address: str


@dataclass(frozen=True)
class DataStore:
    """A managed data store endpoint: probed over TCP; its metrics endpoint scraped when
    `ca_file` (the cluster's CA, container path) is set."""

    service: str  # postgres | postgres-pool | postgres-replica | valkey
    host: str  # private host name
    port: int
    metrics: bool = False
    ca_file: str = ""


@dataclass(frozen=True)
class ScrapeTargets:
    """Everything Prometheus needs to know about the stack's addresses (none of it secret)."""

    app_hosts: tuple[ScrapeHost, ...]
    monitoring_host: ScrapeHost
    data_stores: tuple[DataStore, ...] = ()
    database_metrics_username: str = ""


def _static(job: str, targets: Sequence[str], **labels: str) -> dict[str, Any]:
    group: dict[str, Any] = {"targets": list(targets)}
    if labels:
        group["labels"] = labels
    return {"job_name": job, "static_configs": [group]}


def _per_host(hosts: Sequence[ScrapeHost], port: int, role: str) -> list[dict[str, Any]]:
    return [
        {"targets": [f"{h.address}:{port}"], "labels": {"host": h.name, "role": role}}
        for h in hosts
    ]


def _blackbox(job: str, module: str, groups: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """blackbox_exporter's multi-target pattern: the target becomes the `target` parameter."""
    relabel = [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": f"127.0.0.1:{BLACKBOX_PORT}"},
    ]
    return {
        "job_name": job,
        "metrics_path": "/probe",
        "params": {"module": [module]},
        "static_configs": list(groups),
        "relabel_configs": relabel,
    }


def render_prometheus_config(settings: Settings, targets: ScrapeTargets) -> str:
    """prometheus.yml: global labels, Alertmanager, the rule file and every scrape job."""
    monitoring = targets.monitoring_host
    jobs: list[dict[str, Any]] = [
        _static("prometheus", [f"127.0.0.1:{PROMETHEUS_PORT}"]),
        _static("alertmanager", [f"127.0.0.1:{ALERTMANAGER_PORT}"]),
        _static("grafana", [f"127.0.0.1:{GRAFANA_PORT}"]),
        _static("loki", [f"{monitoring.address}:{LOKI_PORT}"]),
        _static("blackbox", [f"127.0.0.1:{BLACKBOX_PORT}"]),
        {
            "job_name": "node",
            "static_configs": [
                *_per_host(targets.app_hosts, NODE_EXPORTER_PORT, "app"),
                # Its own node_exporter, on the host network next to Prometheus.
                *_per_host(
                    [ScrapeHost(monitoring.name, "127.0.0.1")], NODE_EXPORTER_PORT, "monitoring"
                ),
            ],
        },
        {
            # The target's labels win: the request metrics' own `host`/`job` (the log stream's)
            # become `exported_*`, and Alloy's internal series whose `host` is Loki's address
            # cannot pose as a droplet.
            "job_name": "alloy",
            "static_configs": _per_host(targets.app_hosts, ALLOY_HTTP_PORT, "app"),
        },
        _blackbox("site", "https_ready", [{"targets": [f"{settings.site_url}{HEALTH_PATH}"]}]),
    ]
    stores = targets.data_stores
    if stores:
        groups = [
            {"targets": [f"{s.host}:{s.port}"], "labels": {"service": s.service}} for s in stores
        ]
        jobs.append(_blackbox("data_stores", "tcp_connect", groups))
    for store in (s for s in stores if s.metrics):
        jobs.append(
            {
                "job_name": f"managed_{store.service.replace('-', '_')}",
                "scheme": "https",
                "scrape_interval": "60s",
                "fallback_scrape_protocol": FALLBACK_SCRAPE_PROTOCOL,
                "basic_auth": {
                    "username": targets.database_metrics_username,
                    "password_file": DB_METRICS_PASSWORD_FILE,
                },
                "tls_config": {"ca_file": store.ca_file, "min_version": "TLS12"},
                "static_configs": [
                    {
                        "targets": [f"{store.host}:{DATABASE_METRICS_PORT}"],
                        "labels": {"service": store.service},
                    }
                ],
            }
        )

    config = {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"environment": settings.environment},
        },
        "alerting": {
            "alertmanagers": [
                {
                    "api_version": "v2",
                    "static_configs": [{"targets": [f"127.0.0.1:{ALERTMANAGER_PORT}"]}],
                }
            ]
        },
        "rule_files": [f"rules/{RULES_FILE_NAME}"],
        "scrape_configs": jobs,
    }
    header = (
        f"# Prometheus for clipper {settings.environment}; rendered by"
        " components/renderers/prometheus.py. Do not edit on the host.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=100)


def render_blackbox_config(settings: Settings) -> str:
    """blackbox_exporter's modules: `https_ready` (the site's readiness over TLS 1.2+, no
    redirect, 200 only; its certificate's expiry comes with it) and `tcp_connect` (the data
    stores accept connections from the VPC)."""
    config = {
        "modules": {
            "https_ready": {
                "prober": "http",
                "timeout": "10s",
                "http": {
                    "method": "GET",
                    "valid_status_codes": [200],
                    "fail_if_not_ssl": True,
                    "follow_redirects": False,
                    "preferred_ip_protocol": "ip4",
                    "tls_config": {"min_version": "TLS12"},
                },
            },
            "tcp_connect": {
                "prober": "tcp",
                "timeout": "5s",
                "tcp": {"preferred_ip_protocol": "ip4"},
            },
        }
    }
    header = (
        f"# blackbox_exporter for clipper {settings.environment}; rendered by"
        " components/renderers/prometheus.py.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=100)


def _alert(name: str, expr: str, duration: str, severity: str, *text: str) -> dict[str, Any]:
    """One alerting rule; `text` is the summary and the description."""
    summary, description = text
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def alert_names() -> tuple[str, ...]:
    """Every alert the rule file defines (the rule tests cover each one)."""
    return (
        "HighErrorRate",
        "SlowResponses",
        "HostDown",
        "SiteDown",
        "ScrapeTargetDown",
        "DataStoreUnreachable",
        "DatabaseMetricsDown",
        "DatabaseConnectionsNearLimit",
        "HighCpuUsage",
        "HighMemoryUsage",
        "DiskSpaceLow",
        "TlsCertificateExpiring",
        "BackupStale",
        "BackupFailed",
        "BackupsNearDeletion",
        "RestoreDrillStale",
        "RestoreDrillFailed",
        "DeployFailed",
        "LogShippingFailing",
    )


def _stale_or_absent(metric: str, max_age_hours: int) -> str:
    """Older than `max_age_hours` on some host, or reported by no host at all (a new stack, a
    metrics file never written): silence is itself the alert."""
    return (
        f"time() - max by (instance, host) ({metric}) > {max_age_hours * 3600}"
        f' or absent({metric}{{job="node"}})'
    )


def _failed_since_success(failure: str, success: str) -> str:
    """A failure after the last success, or a failure and no success ever."""
    failed, succeeded = (f"max by (instance, host) ({m})" for m in (failure, success))
    return f"{failed} > {succeeded} or ({failed} unless on (instance, host) {succeeded})"


def render_alert_rules(settings: Settings) -> str:
    """The rule file: one group of recording rules for the request ratios, one of alerts.

    CPU, memory and disk thresholds are the stack's `alert*Percent` settings (the same numbers
    DigitalOcean's own alerts use, components/alerts.py); the rest are the checklist's.
    """
    connection_limit = slugs.postgres_connection_limit(settings.db_size)
    retention_days = settings.backup_retention_days
    disk_free_percent = 100 - settings.alert_disk_percent
    requests = f"sum(rate({REQUESTS_METRIC}[5m]))"
    recording = [
        {"record": "clipper:http_requests:rate5m", "expr": requests},
        {
            "record": "clipper:http_errors:ratio_rate5m",
            "expr": f'sum(rate({REQUESTS_METRIC}{{status_class="5xx"}}[5m])) / {requests}',
        },
        {
            "record": "clipper:http_request_duration_seconds:p95_5m",
            "expr": (f"histogram_quantile(0.95, sum by (le) (rate({DURATION_METRIC}_bucket[5m])))"),
        },
    ]
    alerts = [
        _alert(
            "HighErrorRate",
            f"clipper:http_errors:ratio_rate5m > {ERROR_RATE_RATIO}"
            f" and clipper:http_requests:rate5m > {ERROR_RATE_MIN_RPS}",
            "2m", "critical",
            "More than 5% of requests fail with 5xx",
            "{{ $value | humanizePercentage }} of requests answered 5xx over the last 5 minutes.",
        ),
        _alert(
            "SlowResponses",
            f"clipper:http_request_duration_seconds:p95_5m > {LATENCY_P95_SECONDS}",
            "5m", "warning",
            "p95 response time above 500 ms",
            "p95 over 5 minutes is {{ $value | humanizeDuration }} (nginx request_time).",
        ),
        _alert(
            "HostDown",
            'up{job="node"} == 0',
            "2m", "critical",
            "Host {{ $labels.host }} is down or unreachable",
            "node_exporter on {{ $labels.instance }} ({{ $labels.role }}) did not answer.",
        ),
        _alert(
            "SiteDown",
            'probe_success{job="site"} == 0',
            "2m", "critical",
            "The site's readiness probe fails",
            "{{ $labels.instance }} did not answer 2xx over TLS from the monitoring host.",
        ),
        _alert(
            "ScrapeTargetDown",
            'up{job=~"alloy|prometheus|alertmanager|grafana|loki|blackbox"} == 0',
            "5m", "warning",
            "{{ $labels.job }} on {{ $labels.instance }} is down",
            "Monitoring is partly blind: {{ $labels.job }} has not been scraped for 5 minutes.",
        ),
        _alert(
            "DataStoreUnreachable",
            'probe_success{job="data_stores"} == 0',
            "2m", "critical",
            "{{ $labels.service }} does not accept connections",
            "A TCP connection from the VPC to {{ $labels.instance }} failed.",
        ),
        _alert(
            "DatabaseMetricsDown",
            'up{job=~"managed_.*"} == 0',
            "10m", "warning",
            "Metrics of the managed {{ $labels.service }} are unavailable",
            "DigitalOcean's metrics endpoint {{ $labels.instance }} did not answer for 10 min.",
        ),
        _alert(
            "DatabaseConnectionsNearLimit",
            f'sum by (instance) ({POSTGRES_CONNECTIONS_METRIC}{{job="managed_postgres"}})'
            f" > {DB_CONNECTIONS_RATIO} * {connection_limit}",
            "5m", "warning",
            "PostgreSQL connections above 80% of the limit",
            f"{{{{ $value }}}} connections of {connection_limit} ({settings.db_size});"
            " new connections will soon be refused.",
        ),
        _alert(
            "HighCpuUsage",
            '100 * (1 - avg by (instance, host) (rate(node_cpu_seconds_total{mode="idle"}[5m])))'
            f" > {settings.alert_cpu_percent}",
            "10m", "warning",
            f"CPU above {settings.alert_cpu_percent}% on {{{{ $labels.host }}}}",
            "CPU busy {{ $value | humanize }}% over 5 minutes.",
        ),
        _alert(
            "HighMemoryUsage",
            "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"
            f" > {settings.alert_memory_percent}",
            "10m", "warning",
            f"Memory above {settings.alert_memory_percent}% on {{{{ $labels.host }}}}",
            "{{ $value | humanize }}% of memory in use.",
        ),
        _alert(
            "DiskSpaceLow",
            '100 * node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs|ramfs"}'
            ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs|ramfs"}'
            f" < {disk_free_percent}",
            "10m", "warning",
            f"Less than {disk_free_percent}% disk free on {{{{ $labels.host }}}}",
            "{{ $labels.mountpoint }} has {{ $value | humanize }}% free.",
        ),
        _alert(
            "TlsCertificateExpiring",
            f'(probe_ssl_earliest_cert_expiry{{job="site"}} - time()) / 86400 < {TLS_EXPIRY_DAYS}',
            "10m", "warning",
            "The site's TLS certificate expires within 14 days",
            "{{ $labels.instance }}: {{ $value | humanize }} days left; renewal has failed.",
        ),
        _alert(
            "BackupStale",
            _stale_or_absent(BACKUP_METRIC, BACKUP_MAX_AGE_HOURS),
            "30m", "critical",
            "No successful backup for more than a day (or no backup metric at all)",
            "The last successful backup on {{ $labels.host }} is"
            " {{ $value | humanizeDuration }} old; with no host label, no host reports a"
            " backup at all: a new stack (run `sudo systemctl start clipper-backup` on app-1),"
            " or a metrics file that was not written.",
        ),
        _alert(
            "BackupFailed",
            _failed_since_success(BACKUP_FAILURE_METRIC, BACKUP_METRIC),
            "5m", "warning",
            "The last backup attempt failed",
            "The backup on {{ $labels.host }} failed after its last success (or has never"
            " succeeded); see `journalctl -u clipper-backup` there.",
        ),
        _alert(
            "BackupsNearDeletion",
            f"({retention_days} * 86400 - (time() - max by (instance, host) ({BACKUP_METRIC})))"
            f" / 86400 < {retention_days / 2:g}",
            "1h", "critical",
            "Backups stopped long ago: the lifecycle rule will delete the newest one",
            f"The newest backup on {{{{ $labels.host }}}} leaves the bucket's"
            f" {retention_days}-day retention in {{{{ $value | humanize }}}} days (then it lives"
            " on as an old version for 7 days). Fix the backup now, or copy the newest dump out.",
        ),
        _alert(
            "RestoreDrillStale",
            _stale_or_absent(DRILL_METRIC, DRILL_MAX_AGE_HOURS),
            "1h", "warning",
            "No passing restore drill within its weekly schedule plus a day",
            "The last passing drill on {{ $labels.host }} is {{ $value | humanizeDuration }}"
            " old; with no host label, none has ever passed (run"
            " `sudo systemctl start clipper-backup-drill` on app-1).",
        ),
        _alert(
            "RestoreDrillFailed",
            _failed_since_success(DRILL_FAILURE_METRIC, DRILL_METRIC),
            "5m", "critical",
            "The last restore drill failed: the backups may not restore",
            "The drill on {{ $labels.host }} failed after its last pass (or has never passed);"
            " see `journalctl -u clipper-backup-drill` there.",
        ),
        _alert(
            "DeployFailed",
            f"{RELEASE_ATTEMPT_SUCCESS_METRIC} == 0",
            "1m", "warning",
            "The last deploy or rollback on {{ $labels.host }} failed",
            "The previous release is still serving; see `sudo clipper-release status` and the"
            " deploy's output there.",
        ),
        _alert(
            "LogShippingFailing",
            f'sum by (instance, host) ({ALLOY_COMPONENTS_METRIC}{{health_type!="healthy"}}) > 0'
            f" or sum by (instance, host) (increase({ALLOY_DROPPED_METRIC}[15m])) > 0",
            "10m", "warning",
            "Alloy on {{ $labels.host }} is unhealthy or drops log lines",
            "An Alloy component is unhealthy or Loki refused entries: logs (and perhaps request"
            " metrics) are incomplete; see `journalctl -u clipper-alloy` there.",
        ),
    ]  # fmt: skip
    assert tuple(a["alert"] for a in alerts) == alert_names()
    document = {
        "groups": [
            {"name": "clipper-requests", "interval": "30s", "rules": recording},
            {"name": "clipper-alerts", "rules": alerts},
        ]
    }
    header = (
        f"# Alert rules for clipper {settings.environment}; rendered by"
        " components/renderers/prometheus.py.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100)
