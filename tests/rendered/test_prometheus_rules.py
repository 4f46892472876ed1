"""Prometheus on the monitoring host, checked by promtool: the shipped config and rule file are
valid, and `promtool test rules` proves each alert of the checklist fires when it should and
stays quiet when it should not, with each stack's thresholds. The blackbox modules are checked
by blackbox_exporter itself (`--config.check`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.renderers import prometheus
from components.renderers.prometheus import (
    BACKUP_FAILURE_METRIC,
    BACKUP_METRIC,
    DURATION_METRIC,
    POSTGRES_CONNECTIONS_METRIC,
    REQUESTS_METRIC,
    RULES_FILE_NAME,
)
from components.settings import Settings, slugs
from tests.support.monitoring import STACKS, monitoring_file, run_tool, stack_settings, write

SITE = "https://clipper.example.com/health/ready"


@dataclass(frozen=True)
class Case:
    """One `promtool test rules` group: series in, the alert expected (or not) at `at`."""

    alert: str
    fires: bool
    series: dict[str, str]
    at: str = "10m"
    labels: dict[str, str] = field(default_factory=dict)
    interval: str = "30s"
    # Rule evaluation step; day-long cases use a coarse one to keep promtool fast.
    evaluation: str = "30s"

    def group(self, severity: str) -> dict[str, Any]:
        expected = [{"exp_labels": {"severity": severity, **self.labels}}] if self.fires else []
        return {
            "interval": self.interval,
            "input_series": [{"series": s, "values": v} for s, v in self.series.items()],
            "alert_rule_test": [
                {"eval_time": self.at, "alertname": self.alert, "exp_alerts": expected}
            ],
        }


def _counter_per_30s(rate_per_second: float) -> str:
    return f"0+{rate_per_second * 30:g}x60"


def _cases(s: Settings) -> list[Case]:
    node = {"job": "node", "instance": "10.0.0.3:9100", "host": "app-1", "role": "app"}
    node_sel = 'job="node", instance="10.0.0.3:9100", host="app-1", role="app"'
    fs = f'{node_sel}, device="/dev/vda1", fstype="ext4", mountpoint="/"'
    fs_labels = {**node, "device": "/dev/vda1", "fstype": "ext4", "mountpoint": "/"}
    limit = slugs.postgres_connection_limit(s.db_size)
    disk_free = 100 - s.alert_disk_percent
    site = {"job": "site", "instance": SITE}
    site_sel = f'job="site", instance="{SITE}"'
    store = {"job": "data_stores", "instance": "db:25060", "service": "postgres"}
    store_sel = 'job="data_stores", instance="db:25060", service="postgres"'
    db_metrics = {"job": "managed_postgres", "instance": "db:9273", "service": "postgres"}
    db_sel = 'job="managed_postgres", instance="db:9273", service="postgres"'

    def requests(five_xx: float, two_xx: float) -> dict[str, str]:
        series = {
            f'{REQUESTS_METRIC}{{status_class="5xx", host="app-1"}}': _counter_per_30s(five_xx)
        }
        if two_xx:
            series[f'{REQUESTS_METRIC}{{status_class="2xx", host="app-1"}}'] = _counter_per_30s(
                two_xx
            )
        return series

    def latency(share_fast: float) -> dict[str, str]:
        # 10 requests per 30 s; `share_fast` of them under 250 ms, the rest between 0.5 and 1 s.
        fast = round(10 * share_fast)
        buckets = {"0.25": fast, "0.5": fast, "1": 10, "+Inf": 10}
        return {
            f'{DURATION_METRIC}_bucket{{le="{le}", host="app-1"}}': f"0+{n}x60"
            for le, n in buckets.items()
        }

    def cpu(busy_percent: float) -> dict[str, str]:
        idle_per_30s = 30 * (100 - busy_percent) / 100
        return {
            f'node_cpu_seconds_total{{{node_sel}, cpu="0", mode="idle"}}': f"0+{idle_per_30s:g}x60"
        }

    def memory(used_percent: float) -> dict[str, str]:
        return {
            f"node_memory_MemTotal_bytes{{{node_sel}}}": "1000x60",
            f"node_memory_MemAvailable_bytes{{{node_sel}}}": f"{10 * (100 - used_percent):g}x60",
        }

    def disk(free_percent: float, fstype: str = "ext4") -> dict[str, str]:
        sel = fs.replace('fstype="ext4"', f'fstype="{fstype}"')
        return {
            f"node_filesystem_size_bytes{{{sel}}}": "1000x60",
            f"node_filesystem_avail_bytes{{{sel}}}": f"{10 * free_percent:g}x60",
        }

    def cert(days_left_at_10m: float) -> dict[str, str]:
        expiry = 600 + days_left_at_10m * 86400
        return {f"probe_ssl_earliest_cert_expiry{{{site_sel}}}": f"{expiry:g}x60"}

    backup = f"{BACKUP_METRIC}{{{node_sel}}}"
    failure = f"{BACKUP_FAILURE_METRIC}{{{node_sel}}}"
    drill = f"{prometheus.DRILL_METRIC}{{{node_sel}}}"
    drill_failure = f"{prometheus.DRILL_FAILURE_METRIC}{{{node_sel}}}"
    attempt = f"{prometheus.RELEASE_ATTEMPT_SUCCESS_METRIC}{{{node_sel}}}"
    host = {"instance": node["instance"], "host": "app-1"}
    alloy_sel = 'job="alloy", instance="10.0.0.3:9080", host="app-1", role="app"'
    alloy_host = {"instance": "10.0.0.3:9080", "host": "app-1"}
    components = f"{prometheus.ALLOY_COMPONENTS_METRIC}{{{alloy_sel}, health_type"
    healthy, unhealthy = f'{components}="healthy"}}', f'{components}="unhealthy"}}'
    dropped = f'{prometheus.ALLOY_DROPPED_METRIC}{{{alloy_sel}, reason="ingester_error"}}'
    # node_exporter answers, but without the textfile metric in question.
    scraped = {f"up{{{node_sel}}}": "1x60"}
    half_retention_h = s.backup_retention_days * 24 // 2
    drill_max_h = prometheus.DRILL_MAX_AGE_HOURS
    return [
        # 0.2 of 2.2 requests/s fail: 9% > 5%.
        Case("HighErrorRate", True, requests(0.2, 2.0)),
        # 0.02 of 2.02 requests/s fail: 1%.
        Case("HighErrorRate", False, requests(0.02, 2.0)),
        # Every request fails, but there are only 2 a minute: not an "error rate" yet.
        Case("HighErrorRate", False, requests(1 / 30, 0)),
        Case("SlowResponses", True, latency(0.1)),
        Case("SlowResponses", False, latency(1.0)),
        Case("HostDown", True, {f"up{{{node_sel}}}": "0x60"}, labels=node),
        Case("HostDown", False, {f"up{{{node_sel}}}": "1x60"}),
        # Down for one minute only (a reboot): the 2-minute `for` keeps it quiet.
        Case("HostDown", False, {f"up{{{node_sel}}}": "1x16 0 0 1x40"}),
        Case("SiteDown", True, {f"probe_success{{{site_sel}}}": "0x60"}, labels=site),
        Case("SiteDown", False, {f"probe_success{{{site_sel}}}": "1x60"}),
        Case(
            "ScrapeTargetDown", True,
            {'up{job="alloy", instance="10.0.0.3:9080", host="app-1"}': "0x60"},
            labels={"job": "alloy", "instance": "10.0.0.3:9080", "host": "app-1"},
        ),
        # A host that is down is HostDown's business, not this alert's.
        Case("ScrapeTargetDown", False, {f"up{{{node_sel}}}": "0x60"}),
        Case("DataStoreUnreachable", True, {f"probe_success{{{store_sel}}}": "0x60"}, labels=store),
        Case("DataStoreUnreachable", False, {f"probe_success{{{store_sel}}}": "1x60"}),
        Case("DatabaseMetricsDown", True, {f"up{{{db_sel}}}": "0x60"}, at="15m", labels=db_metrics),
        Case("DatabaseMetricsDown", False, {f"up{{{db_sel}}}": "1x60"}, at="15m"),
        Case(
            "DatabaseConnectionsNearLimit", True,
            {f"{POSTGRES_CONNECTIONS_METRIC}{{{db_sel}}}": f"{math.ceil(0.85 * limit)}x60"},
            labels={"instance": "db:9273"},
        ),
        Case(
            "DatabaseConnectionsNearLimit", False,
            {f"{POSTGRES_CONNECTIONS_METRIC}{{{db_sel}}}": f"{limit // 2}x60"},
        ),
        Case("HighCpuUsage", True, cpu(s.alert_cpu_percent + 5), at="15m",
             labels={"instance": node["instance"], "host": "app-1"}),
        Case("HighCpuUsage", False, cpu(s.alert_cpu_percent - 20), at="15m"),
        Case("HighMemoryUsage", True, memory(s.alert_memory_percent + 5), at="15m", labels=node),
        Case("HighMemoryUsage", False, memory(s.alert_memory_percent - 20), at="15m"),
        Case("DiskSpaceLow", True, disk(disk_free - 5), at="15m", labels=fs_labels),
        Case("DiskSpaceLow", False, disk(disk_free + 10), at="15m"),
        # A full tmpfs is not a disk.
        Case("DiskSpaceLow", False, disk(1, fstype="tmpfs"), at="15m"),
        Case("TlsCertificateExpiring", True, cert(10), at="20m", labels=site),
        Case("TlsCertificateExpiring", False, cert(30), at="20m"),
        # The last backup ran at time 0; 28 h later it is stale. A daily backup stays quiet.
        Case("BackupStale", True, {backup: "0x400"}, at="28h", interval="5m", evaluation="5m",
             labels=host),
        Case("BackupStale", False, {backup: "0+300x400"}, at="28h", interval="5m",
             evaluation="5m"),
        # The host is scraped but reports no backup at all (a new stack, an unwritten file).
        Case("BackupStale", True, scraped, at="40m", labels={"job": "node"}),
        Case("BackupFailed", True, {backup: "100x60", failure: "200x60"}, labels=host),
        Case("BackupFailed", False, {backup: "200x60", failure: "100x60"}),
        # Failed and never succeeded: no success metric at all.
        Case("BackupFailed", True, {failure: "200x60", **scraped}, labels=host),
        # Never failed: no failure metric at all is the normal case.
        Case("BackupFailed", False, {backup: "200x60"}),
        # Backups stopped at time 0: past half the retention the newest one is at risk.
        Case("BackupsNearDeletion", True, {backup: "0x500"}, at=f"{half_retention_h + 26}h",
             interval="1h", evaluation="1h", labels=host),
        Case("BackupsNearDeletion", False, {backup: "0x500"}, at=f"{half_retention_h - 24}h",
             interval="1h", evaluation="1h"),
        Case("BackupsNearDeletion", False, {backup: "0+3600x500"}, at=f"{half_retention_h + 26}h",
             interval="1h", evaluation="1h"),
        # A weekly drill at time 0 and a week later: fresh 6 days after the second one.
        Case("RestoreDrillStale", True, {drill: "0x300"}, at=f"{drill_max_h + 3}h",
             interval="1h", evaluation="1h", labels=host),
        Case("RestoreDrillStale", False, {drill: "0x167 604800x167"}, at=f"{168 + 144}h",
             interval="1h", evaluation="1h"),
        Case("RestoreDrillStale", True, scraped, at="2h", labels={"job": "node"}),
        Case("RestoreDrillFailed", True, {drill: "100x60", drill_failure: "200x60"}, labels=host),
        Case("RestoreDrillFailed", False, {drill: "200x60", drill_failure: "100x60"}),
        Case("RestoreDrillFailed", True, {drill_failure: "200x60", **scraped}, labels=host),
        Case("RestoreDrillFailed", False, {drill: "200x60"}),
        Case("DeployFailed", True, {attempt: "1x5 0x55"}, labels=node),
        Case("DeployFailed", False, {attempt: "0x3 1x57"}),
        Case("LogShippingFailing", True, {unhealthy: "1x60"}, at="15m", labels=alloy_host),
        Case("LogShippingFailing", True, {dropped: "0+5x60"}, at="15m", labels=alloy_host),
        Case("LogShippingFailing", False, {healthy: "9x60", unhealthy: "0x60", dropped: "3x60"},
             at="15m"),
    ]  # fmt: skip


def _rules_without_annotations(text: str) -> str:
    """promtool compares annotations too; the rule behaviour is what these cases check (the
    annotations' templates are checked by `promtool check rules` on the shipped file)."""
    document = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return yaml.safe_dump(document, sort_keys=False)


def _severities(text: str) -> dict[str, str]:
    document = yaml.safe_load(text)
    return {
        rule["alert"]: rule["labels"]["severity"]
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def _shipped_rules(stack: str) -> str:
    return monitoring_file(stack, f"prometheus/rules/{RULES_FILE_NAME}").content


# Scrape-config fields of Prometheus 3 that the promtool installed here (Debian's 2.x; Debian
# 13's is 2.53, still 2.x) does not know: they are checked against Prometheus 3's documented
# values instead (docs/configuration/configuration.md from v3.5 on), and removed before promtool
# checks the rest of the file.
PROMETHEUS3_SCRAPE_FIELDS: dict[str, set[str]] = {
    "fallback_scrape_protocol": {
        "PrometheusProto", "OpenMetricsText0.0.1", "OpenMetricsText1.0.0",
        "PrometheusText0.0.4", "PrometheusText1.0.0",
    },
}  # fmt: skip


def _shipped_config(stack: str) -> dict[str, Any]:
    return yaml.safe_load(monitoring_file(stack, "prometheus/prometheus.yml").content)


def _without_prometheus3_fields(config: dict[str, Any]) -> dict[str, Any]:
    for job in config["scrape_configs"]:
        for name in PROMETHEUS3_SCRAPE_FIELDS:
            job.pop(name, None)
    return config


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus3_only_fields_hold_documented_values(stack: str) -> None:
    jobs = _shipped_config(stack)["scrape_configs"]
    used = {(name, job[name]) for job in jobs for name in PROMETHEUS3_SCRAPE_FIELDS if name in job}
    # DigitalOcean's endpoints: Prometheus 3 drops a scrape with a missing or odd Content-Type.
    assert {j["job_name"] for j in jobs if "fallback_scrape_protocol" in j} == {
        j["job_name"] for j in jobs if j["job_name"].startswith("managed_")
    }
    for name, value in used:
        assert value in PROMETHEUS3_SCRAPE_FIELDS[name], (name, value)
    assert _shipped_config(stack)["alerting"]["alertmanagers"][0]["api_version"] == "v2"


def test_the_installed_promtool_cannot_read_prometheus3_fields(tmp_path: Path) -> None:
    """Why the fields are taken out before `promtool check config`: when CI's promtool is 3.x
    this fails, and the stripping should go."""
    config = write(
        tmp_path / "prometheus.yml", monitoring_file("staging", "prometheus/prometheus.yml").content
    )
    write(tmp_path / "rules" / RULES_FILE_NAME, _shipped_rules("staging"))
    result = run_tool(["promtool", "check", "config", str(config)])
    assert result.returncode != 0
    assert "field fallback_scrape_protocol not found" in result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_config_and_rules_pass_promtool_check_config(
    stack: str, tmp_path: Path
) -> None:
    config = write(
        tmp_path / "prometheus.yml",
        yaml.safe_dump(_without_prometheus3_fields(_shipped_config(stack)), sort_keys=False),
    )
    write(tmp_path / "rules" / RULES_FILE_NAME, _shipped_rules(stack))
    result = run_tool(["promtool", "check", "config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_rules_pass_promtool_check_rules(stack: str, tmp_path: Path) -> None:
    rules = write(tmp_path / RULES_FILE_NAME, _shipped_rules(stack))
    result = run_tool(["promtool", "check", "rules", str(rules)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_of_the_checklist_is_defined_with_a_severity_and_text(stack: str) -> None:
    document = yaml.safe_load(_shipped_rules(stack))
    alerts = [r for g in document["groups"] for r in g["rules"] if "alert" in r]
    assert [a["alert"] for a in alerts] == list(prometheus.alert_names())
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


@pytest.mark.parametrize("stack", STACKS)
def test_each_alert_fires_when_it_should_and_stays_quiet_when_it_should_not(
    stack: str, tmp_path: Path
) -> None:
    settings = stack_settings(stack)
    cases = _cases(settings)
    assert {c.alert for c in cases if c.fires} == set(prometheus.alert_names())
    assert {c.alert for c in cases if not c.fires} == set(prometheus.alert_names())

    shipped = _shipped_rules(stack)
    severity = _severities(shipped)
    write(tmp_path / RULES_FILE_NAME, _rules_without_annotations(shipped))
    for evaluation in sorted({c.evaluation for c in cases}):
        tests = {
            "rule_files": [RULES_FILE_NAME],
            "evaluation_interval": evaluation,
            "tests": [c.group(severity[c.alert]) for c in cases if c.evaluation == evaluation],
        }
        test_file = write(tmp_path / f"tests-{evaluation}.yml", yaml.safe_dump(tests))
        result = run_tool(["promtool", "test", "rules", test_file.name], cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_a_wrong_expectation_makes_promtool_fail(tmp_path: Path) -> None:
    """The harness can fail: claiming a healthy host fires HostDown is caught."""
    write(tmp_path / RULES_FILE_NAME, _rules_without_annotations(_shipped_rules("staging")))
    wrong = Case(
        "HostDown", True, {'up{job="node", host="app-1"}': "1x60"}, labels={"host": "app-1"}
    )
    tests = {
        "rule_files": [RULES_FILE_NAME],
        "evaluation_interval": "30s",
        "tests": [wrong.group("critical")],
    }
    test_file = write(tmp_path / "tests.yml", yaml.safe_dump(tests))
    result = run_tool(["promtool", "test", "rules", test_file.name], cwd=tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize("stack", STACKS)
def test_thresholds_follow_the_stack_settings(stack: str) -> None:
    settings = stack_settings(stack)
    rules = {
        r["alert"]: r["expr"]
        for g in yaml.safe_load(_shipped_rules(stack))["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert rules["HighCpuUsage"].endswith(f"> {settings.alert_cpu_percent}")
    assert rules["HighMemoryUsage"].endswith(f"> {settings.alert_memory_percent}")
    assert rules["DiskSpaceLow"].endswith(f"< {100 - settings.alert_disk_percent}")
    limit = slugs.postgres_connection_limit(settings.db_size)
    assert rules["DatabaseConnectionsNearLimit"].endswith(f"> 0.8 * {limit}")


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_scrapes_every_app_host_node_exporter_and_alloy(stack: str) -> None:
    config = yaml.safe_load(monitoring_file(stack, "prometheus/prometheus.yml").content)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    settings = stack_settings(stack)
    hosts = {
        g["labels"]["host"] for g in jobs["node"]["static_configs"] if g["labels"]["role"] == "app"
    }
    assert hosts == {f"clipper-{stack}-app-{n}" for n in range(1, settings.app_count + 1)}
    assert len(jobs["alloy"]["static_configs"]) == settings.app_count
    assert "honor_labels" not in jobs["alloy"]  # the target's host label is the droplet's
    assert jobs["site"]["static_configs"] == [{"targets": [f"{settings.site_url}/health/ready"]}]
    services = {g["labels"]["service"] for g in jobs["data_stores"]["static_configs"]}
    assert {"postgres", "valkey"} <= services
    assert ("postgres-replica" in services) == settings.db_read_replica


@pytest.mark.parametrize("stack", STACKS)
def test_managed_database_metrics_use_a_password_file_and_the_cluster_ca(stack: str) -> None:
    config = yaml.safe_load(monitoring_file(stack, "prometheus/prometheus.yml").content)
    managed = [j for j in config["scrape_configs"] if j["job_name"].startswith("managed_")]
    assert {j["job_name"] for j in managed} == {"managed_postgres", "managed_valkey"}
    for job in managed:
        assert job["scheme"] == "https"
        assert "password" not in job["basic_auth"]
        assert job["basic_auth"]["password_file"] == prometheus.DB_METRICS_PASSWORD_FILE
        assert job["tls_config"]["ca_file"].startswith(f"{prometheus.CONFIG_DIR}/ca/")


@pytest.mark.parametrize("stack", STACKS)
def test_blackbox_exporter_accepts_the_shipped_modules(stack: str, tmp_path: Path) -> None:
    config = write(
        tmp_path / "blackbox.yml", monitoring_file(stack, "blackbox/blackbox.yml").content
    )
    result = run_tool(["prometheus-blackbox-exporter", "--config.check", f"--config.file={config}"])
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in result.stderr


def test_blackbox_exporter_refuses_an_unknown_field(tmp_path: Path) -> None:
    text = monitoring_file("staging", "blackbox/blackbox.yml").content
    config = write(tmp_path / "blackbox.yml", text.replace("fail_if_not_ssl", "fail_if_not_tls"))
    result = run_tool(["prometheus-blackbox-exporter", "--config.check", f"--config.file={config}"])
    assert result.returncode != 0
