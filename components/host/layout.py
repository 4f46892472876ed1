"""Where things live on an app host: the contract between cloud-init, nginx, the host scripts
and the remote commands. Change a path here and every renderer and script follows."""

from __future__ import annotations

from typing import Final, Literal

Color = Literal["blue", "green"]
COLORS: Final[tuple[Color, Color]] = ("blue", "green")

# Each colour's containers listen on loopback only; nginx is the one public listener.
BACKEND_PORTS: Final[dict[Color, int]] = {"blue": 8081, "green": 8082}
FRONTEND_PORTS: Final[dict[Color, int]] = {"blue": 3001, "green": 3002}

DEPLOY_USER: Final = "deploy"

# Configuration and secrets (root-owned; secrets mode 0600).
ETC_DIR: Final = "/etc/clipper"
BACKEND_ENV_FILE: Final = "/etc/clipper/backend.env"  # what the backend reads (secret, 0600)
DB_ADMIN_ENV_FILE: Final = "/etc/clipper/db-admin.env"  # admin URL for extensions (secret, 0600)
DEPLOY_CONFIG_FILE: Final = "/etc/clipper/deploy.json"  # non-secret release settings
STATE_DIR: Final = "/var/lib/clipper"  # releases, the lock, the active colour
# The registry's read-only pull credential (a Docker config dir; config.json secret, 0600).
REGISTRY_DOCKER_CONFIG_DIR: Final = "/etc/clipper/registry"
REGISTRY_DOCKER_CONFIG_FILE: Final = "/etc/clipper/registry/config.json"
# The backend's exports (EXPORT_DIR), mounted into every colour so they outlive a release.
EXPORTS_DIR: Final = "/var/lib/clipper/exports"
BIN_DIR: Final = "/usr/local/bin"
RELEASE_SCRIPT: Final = "/usr/local/bin/clipper-release"  # deploy | rollback | status
# The `clipper` host package both launchers import (hostscripts/clipper in the repository).
HOST_PACKAGE_DIR: Final = "/usr/local/lib/clipper"

# nginx: the site, and the one small file a deploy rewrites to move traffic.
NGINX_SITE_FILE: Final = "/etc/nginx/conf.d/clipper.conf"
NGINX_ACTIVE_UPSTREAMS_FILE: Final = "/etc/nginx/clipper/active-upstreams.conf"
# A loopback-only listener in that include: clipper-release asks it which backend nginx really
# proxies to (the address in VERIFY_UPSTREAM_HEADER) before the old colour stops.
NGINX_VERIFY_PORT: Final = 8099
NGINX_VERIFY_PATH: Final = "/__clipper/upstream"
VERIFY_UPSTREAM_HEADER: Final = "X-Clipper-Upstream"
ACME_WEBROOT: Final = "/var/www/acme"
# JSON access log, one object per line, for the log pipeline (logrotate: /var/log/nginx/*.json).
NGINX_ACCESS_LOG: Final = "/var/log/nginx/clipper-access.json"

# Valkey TLS tunnel: the app speaks plain Redis to loopback, the tunnel speaks TLS to Valkey.
VALKEY_CA_FILE: Final = "/etc/clipper/valkey-ca.crt"

# Host readiness: cloud-init's setup script writes it last; remote commands wait for it.
HOST_READY_FILE: Final = "/var/lib/clipper/host-ready"
# That setup script (renderers/scripts/clipper-host-setup.sh), and the per-stack, per-role
# config beside it that it sources; the file installer must never write either.
HOST_SETUP_SCRIPT: Final = "/usr/local/sbin/clipper-host-setup"
HOST_SETUP_CONFIG: Final = "/usr/local/sbin/clipper-host-setup.env"

# Prometheus node_exporter on every host; reachable only from the VPC (ufw and cloud firewall).
NODE_EXPORTER_PORT: Final = 9100
# Grafana Alloy on every app host: its /metrics (request metrics derived from the access log,
# and its own) is scraped from the VPC like node_exporter. Loki takes pushes from the VPC.
ALLOY_HTTP_PORT: Final = 9080
LOKI_PORT: Final = 3100

# Backups (first app host only): the script, its non-secret config, the Spaces key (secret,
# 0600), its work dir and lock, and node_exporter's textfile collector (Ubuntu's default dir).
BACKUP_SCRIPT: Final = "/usr/local/bin/clipper-backup"
BACKUP_CONFIG_FILE: Final = "/etc/clipper/backup.json"
BACKUP_CREDENTIALS_FILE: Final = "/etc/clipper/backup.env"
BACKUP_WORK_DIR: Final = "/var/lib/clipper/backup"
RELEASES_FILE: Final = "/var/lib/clipper/releases.json"  # clipper-release's record
NODE_EXPORTER_TEXTFILE_DIR: Final = "/var/lib/prometheus/node-exporter"
BACKUP_METRICS_FILE: Final = "/var/lib/prometheus/node-exporter/clipper_backup.prom"
SYSTEMD_UNIT_DIR: Final = "/etc/systemd/system"


def under_root(path: str, root: str = "/") -> str:
    """`path` inside a filesystem rooted at `root`: renderers take a `root` so that tests can
    place a host's files (and the paths written inside them) under a temp dir."""
    if not path.startswith("/"):
        raise ValueError(f"host path must be absolute: {path!r}")
    return path if root in ("", "/") else root.rstrip("/") + path
