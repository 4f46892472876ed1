"""Loki 3.7 on the monitoring host: single binary, filesystem storage on the monitoring volume, and
retention (`logRetentionDays`, the checklist's 30 days in production) enforced by the compactor.

It listens for Alloy's pushes on the monitoring host's private address only (port
host_layout.LOKI_PORT; ufw and the cloud firewall admit the app droplets), and gRPC on loopback.
No Loki binary is packaged for Debian: tests check this file's structure against Loki 3's
documented configuration fields, not with Loki itself.
"""

from __future__ import annotations

from typing import Any

import yaml

from components.host.layout import LOKI_PORT
from components.settings import Settings

# Inside the Loki container: the config, and the data directory on the monitoring volume.
CONFIG_DIR = "/etc/loki"
CONFIG_FILE = f"{CONFIG_DIR}/loki.yml"
DATA_DIR = "/loki"
GRPC_PORT = 9096
# The schema's start date: the first day this stack ran Loki. Never change it for existing data;
# a new schema gets a new entry with a later date.
SCHEMA_FROM = "2026-01-01"


def render_loki_config(settings: Settings, *, listen_address: str) -> str:
    """loki.yml; `listen_address` is the monitoring droplet's private IPv4."""
    retention_hours = settings.log_retention_days * 24
    config: dict[str, Any] = {
        "auth_enabled": False,  # one tenant; only the VPC's app droplets can reach it
        "server": {
            "http_listen_address": listen_address,
            "http_listen_port": LOKI_PORT,
            "grpc_listen_address": "127.0.0.1",
            "grpc_listen_port": GRPC_PORT,
            "log_level": "warn",
        },
        "common": {
            "instance_addr": "127.0.0.1",
            "path_prefix": DATA_DIR,
            "replication_factor": 1,
            "ring": {"kvstore": {"store": "inmemory"}},
            "storage": {
                "filesystem": {
                    "chunks_directory": f"{DATA_DIR}/chunks",
                    "rules_directory": f"{DATA_DIR}/rules",
                }
            },
        },
        "schema_config": {
            "configs": [
                {
                    "from": SCHEMA_FROM,
                    "store": "tsdb",
                    "object_store": "filesystem",
                    "schema": "v13",
                    "index": {"prefix": "index_", "period": "24h"},
                }
            ]
        },
        "compactor": {
            "working_directory": f"{DATA_DIR}/compactor",
            "compaction_interval": "10m",
            "retention_enabled": True,
            "retention_delete_delay": "2h",
            "delete_request_store": "filesystem",
        },
        "limits_config": {
            "retention_period": f"{retention_hours}h",
            "reject_old_samples": True,
            "reject_old_samples_max_age": "168h",
            "ingestion_rate_mb": 8,
            "ingestion_burst_size_mb": 16,
            "max_query_lookback": f"{retention_hours}h",
        },
        "analytics": {"reporting_enabled": False},
    }
    header = (
        f"# Loki for clipper {settings.environment}; rendered by components/renderers/loki.py."
        f" Logs are kept {settings.log_retention_days} days.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=100)
