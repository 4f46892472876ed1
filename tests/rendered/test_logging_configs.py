"""Loki and Grafana files as shipped. No Loki or Grafana binary is packaged for Debian (and
nothing may be downloaded here), so these tests check each file's structure against the fields
the projects document (Loki 3.7's configuration reference, Grafana's provisioning and dashboard
JSON model), and check what a real tool can: every dashboard query with promtool. Alloy's
config has its own file (test_alloy_config.py), the dashboard's queries too
(test_dashboard.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components.host.layout import LOKI_PORT
from components.renderers import grafana, loki, prometheus
from tests.support.monitoring import (
    STACKS,
    monitoring_file,
    stack_settings,
)
from tests.support.program import stack_run

# ------------------------------------------------------------------ documented fields

LOKI_TOP_LEVEL = {
    "target", "auth_enabled", "server", "distributor", "querier", "query_scheduler", "frontend",
    "query_range", "ruler", "ingester_client", "ingester", "pattern_ingester", "index_gateway",
    "bloom_build", "bloom_gateway", "storage_config", "chunk_store_config", "schema_config",
    "compactor", "limits_config", "frontend_worker", "table_manager", "memberlist",
    "runtime_config", "operational_config", "tracing", "analytics", "common", "shutdown_delay",
    "metrics_namespace",
}  # fmt: skip
LOKI_SERVER = {
    "http_listen_address", "http_listen_port", "grpc_listen_address", "grpc_listen_port",
    "log_level", "log_format", "http_server_read_timeout", "http_server_write_timeout",
}  # fmt: skip
LOKI_SCHEMA_ENTRY = {"from", "store", "object_store", "schema", "index", "chunks"}
LOKI_COMPACTOR = {
    "working_directory", "compaction_interval", "retention_enabled", "retention_delete_delay",
    "retention_delete_worker_count", "delete_request_store", "delete_request_cancel_period",
}  # fmt: skip
LOKI_LIMITS = {
    "retention_period", "reject_old_samples", "reject_old_samples_max_age", "ingestion_rate_mb",
    "ingestion_burst_size_mb", "max_query_lookback", "retention_stream",
}  # fmt: skip
GRAFANA_DATASOURCE = {
    "name", "type", "uid", "access", "url", "user", "database", "basicAuth", "basicAuthUser",
    "withCredentials", "isDefault", "jsonData", "secureJsonData", "version", "editable", "orgId",
}  # fmt: skip
GRAFANA_PROVIDER = {
    "name", "orgId", "folder", "folderUid", "type", "disableDeletion", "updateIntervalSeconds",
    "allowUiUpdates", "options",
}  # fmt: skip


def _yaml(stack: str, relative: str) -> Any:
    return yaml.safe_load(monitoring_file(stack, relative).content)


def _monitoring_private_address(stack: str) -> str:
    (droplet,) = [
        d
        for d in stack_run(stack).of_type("digitalocean:index/droplet:Droplet")
        if d.inputs["name"] == f"clipper-{stack}-monitoring"
    ]
    return str(droplet.outputs["ipv4AddressPrivate"])


# ------------------------------------------------------------------ Loki


@pytest.mark.parametrize("stack", STACKS)
def test_loki_uses_only_documented_fields(stack: str) -> None:
    config = _yaml(stack, "loki/loki.yml")
    assert set(config) <= LOKI_TOP_LEVEL
    assert set(config["server"]) <= LOKI_SERVER
    assert set(config["compactor"]) <= LOKI_COMPACTOR
    assert set(config["limits_config"]) <= LOKI_LIMITS
    for entry in config["schema_config"]["configs"]:
        assert set(entry) <= LOKI_SCHEMA_ENTRY


@pytest.mark.parametrize("stack", STACKS)
def test_loki_keeps_logs_for_the_configured_days(stack: str) -> None:
    config = _yaml(stack, "loki/loki.yml")
    days = stack_settings(stack).log_retention_days
    assert config["limits_config"]["retention_period"] == f"{days * 24}h"
    # Retention runs in the compactor; Loki 3 refuses retention without a delete-request store.
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"
    # The compactor's retention needs the tsdb index with a 24h period (schema v13).
    (schema,) = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"], schema["index"]["period"]) == ("tsdb", "v13", "24h")


def test_production_keeps_thirty_days_of_logs_as_the_checklist_asks() -> None:
    assert _yaml("production", "loki/loki.yml")["limits_config"]["retention_period"] == "720h"


@pytest.mark.parametrize("stack", STACKS)
def test_loki_listens_on_the_private_address_and_grpc_on_loopback(stack: str) -> None:
    server = _yaml(stack, "loki/loki.yml")["server"]
    assert server["http_listen_address"] == _monitoring_private_address(stack)
    assert server["http_listen_port"] == LOKI_PORT
    assert server["grpc_listen_address"] == "127.0.0.1"


@pytest.mark.parametrize("stack", STACKS)
def test_loki_stores_everything_under_its_data_directory_on_the_volume(stack: str) -> None:
    config = _yaml(stack, "loki/loki.yml")
    paths = [
        config["common"]["path_prefix"],
        *config["common"]["storage"]["filesystem"].values(),
        config["compactor"]["working_directory"],
    ]
    assert all(p == loki.DATA_DIR or p.startswith(f"{loki.DATA_DIR}/") for p in paths)


# ------------------------------------------------------------------ Grafana


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_datasources_are_provisioned_with_documented_fields(stack: str) -> None:
    document = _yaml(stack, "grafana/provisioning/datasources/clipper.yml")
    assert document["apiVersion"] == 1
    sources = {d["uid"]: d for d in document["datasources"]}
    assert set(sources) == {grafana.PROMETHEUS_UID, grafana.LOKI_UID}
    for source in sources.values():
        assert set(source) <= GRAFANA_DATASOURCE
        assert source["access"] == "proxy" and source["editable"] is False
    assert sources[grafana.PROMETHEUS_UID]["type"] == "prometheus"
    assert (
        sources[grafana.PROMETHEUS_UID]["url"] == f"http://127.0.0.1:{prometheus.PROMETHEUS_PORT}"
    )
    assert sources[grafana.LOKI_UID]["type"] == "loki"
    assert sources[grafana.LOKI_UID]["url"] == (
        f"http://{_monitoring_private_address(stack)}:{LOKI_PORT}"
    )
    assert [s["isDefault"] for s in document["datasources"]].count(True) == 1


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_loads_dashboards_from_the_mounted_folder(stack: str) -> None:
    document = _yaml(stack, "grafana/provisioning/dashboards/clipper.yml")
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert set(provider) <= GRAFANA_PROVIDER
    assert provider["type"] == "file"
    assert provider["options"]["path"] == grafana.DASHBOARDS_DIR


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_listens_on_loopback_and_reads_its_password_from_a_file(stack: str) -> None:
    text = monitoring_file(stack, "grafana/grafana.env").content
    env = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert env["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == grafana.ADMIN_PASSWORD_FILE
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
