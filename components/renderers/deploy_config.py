"""`/etc/clipper/deploy.json`: everything `clipper-release` needs on a host, and nothing secret.

The host script (hostscripts/clipper-release) reads this file and never re-implements a
decision the program already made: the nginx include text for each colour is pre-rendered
here by `render_active_upstreams`, the image references come from settings, the ports and
paths from `host_layout`. Secrets live in the env files next to it (mode 0600).

Schema 1 (keys the script reads; the script refuses another schema number):

    schema                      1
    environment                 "staging" | "production"
    images                      {backend, frontend, migrations, migrate}: image references,
                                each `name:tag@sha256:...` as the program pinned it
    colors.<blue|green>         {backend_port, frontend_port, upstreams}: loopback ports and
                                the include text that points nginx at that colour
    paths                       {backend_env_file, db_admin_env_file, state_dir, nginx_include}
    nginx                       {test_command, reload_command}: argv lists
    health                      {backend_path, frontend_path}: readiness URLs on each colour
    verify                      {url, answers, upstream_header}: the check through nginx that
                                traffic moved (optional to the script; always rendered)
    ready_timeout_seconds       how long a new colour may take to become ready
    drain_seconds               how long the old colour keeps serving after the switch
    stop_timeout_seconds        docker stop grace (the backend drains up to 5 s on SIGTERM)
    release_keep                old releases kept (records and images) for rollback
    database_extensions         created with the admin login before migrations run
    containers                  {prefix, backend_run_args, frontend_run_args,
                                frontend_container_port, port_env}: how each colour runs
    commands                    {docker, psql}: argv prefixes; docker is
                                `docker --config /etc/clipper/registry`, so every pull uses
                                the registry's read-only credential
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.host import layout as host_layout
from components.host.layout import COLORS, Color
from components.renderers.nginx_upstreams import render_active_upstreams
from components.settings import DATABASE_EXTENSIONS, Settings

SCHEMA_VERSION = 1

# The real app's readiness (DB + Redis ping) and the frontend image's static health page.
BACKEND_READY_PATH = "/health/ready"
FRONTEND_HEALTH_PATH = "/health.html"
# nginx:alpine in the frontend image listens on 80 inside its container.
FRONTEND_CONTAINER_PORT = 80
# The backend reads its listen port from PORT; each colour gets its own on the host network.
BACKEND_PORT_ENV = "PORT"
# Consecutive answers through nginx from the new colour before the old one stops.
VERIFY_ANSWERS = 5
# Above the backend's own 5 s SIGTERM drain, so `docker stop` never cuts a request short.
STOP_TIMEOUT_SECONDS = 15

# Bounded json-file logs: a chatty release must not fill the droplet's disk.
_LOG_ARGS: tuple[str, ...] = ("--log-opt", "max-size=10m", "--log-opt", "max-file=3")
# The backend image's own HEALTHCHECK probes :8080 whatever PORT is; this one replaces it and
# probes the colour's port. Docker runs it with /bin/sh -c inside the container, so ${PORT} is
# the container's (set per colour by clipper-release), never expanded on the host.
BACKEND_HEALTH_COMMAND = (
    f'wget -q -O /dev/null "http://127.0.0.1:${{{BACKEND_PORT_ENV}}}{BACKEND_READY_PATH}" || exit 1'
)
_BACKEND_HEALTH_ARGS: tuple[str, ...] = (
    "--health-cmd", BACKEND_HEALTH_COMMAND, "--health-interval", "10s",
    "--health-timeout", "3s", "--health-retries", "3", "--health-start-period", "30s",
)  # fmt: skip
IMAGE_KEYS: tuple[str, ...] = ("backend", "frontend", "migrations", "migrate")


@dataclass(frozen=True)
class HostTarget:
    """Where the release lives on a host. The defaults are the real host layout; tests point
    the same renderer at a temp dir, free ports and a temp-prefix nginx."""

    backend_ports: Mapping[Color, int] = field(
        default_factory=lambda: dict(host_layout.BACKEND_PORTS)
    )
    frontend_ports: Mapping[Color, int] = field(
        default_factory=lambda: dict(host_layout.FRONTEND_PORTS)
    )
    backend_env_file: str = host_layout.BACKEND_ENV_FILE
    db_admin_env_file: str = host_layout.DB_ADMIN_ENV_FILE
    state_dir: str = host_layout.STATE_DIR
    nginx_include: str = host_layout.NGINX_ACTIVE_UPSTREAMS_FILE
    nginx_test_command: tuple[str, ...] = ("nginx", "-t", "-q")
    nginx_reload_command: tuple[str, ...] = ("nginx", "-s", "reload")
    nginx_verify_port: int = host_layout.NGINX_VERIFY_PORT
    container_prefix: str = "clipper"
    docker_command: tuple[str, ...] = ("docker", "--config", host_layout.REGISTRY_DOCKER_CONFIG_DIR)
    exports_dir: str = host_layout.EXPORTS_DIR
    psql_command: tuple[str, ...] = ("psql",)


def _upstreams(color: Color, target: HostTarget) -> str:
    """The include for `color`; identical to `render_active_upstreams` on a real host."""
    text = render_active_upstreams(color)
    # Only tests move the ports; the address swap keeps the renderer the single source.
    for default, port in (
        (host_layout.BACKEND_PORTS[color], target.backend_ports[color]),
        (host_layout.FRONTEND_PORTS[color], target.frontend_ports[color]),
        (host_layout.NGINX_VERIFY_PORT, target.nginx_verify_port),
    ):
        if default != port:
            text = re.sub(rf"(?<=127\.0\.0\.1:){default}\b", str(port), text)
    return text


def backend_run_args(target: HostTarget) -> list[str]:
    """Extra `docker run` arguments of the backend, in every colour."""
    return [
        # Host network: the backend reaches the Valkey TLS tunnel on 127.0.0.1.
        "--network", "host", *_LOG_ARGS, *_BACKEND_HEALTH_ARGS,
        # Exports outlive releases: the same host directory in every colour.
        "--volume", f"{target.exports_dir}:{host_layout.EXPORTS_DIR}",
        "-e", f"EXPORT_DIR={host_layout.EXPORTS_DIR}",
    ]  # fmt: skip


def deploy_config(
    settings: Settings,
    target: HostTarget | None = None,
    images: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The deploy configuration as data (what `render_deploy_config` serialises).

    `images` are the release's pinned references (components/images/release_images.py); without
    them the settings' references are used as they are (tests that replace the images).
    """
    target = target or HostTarget()
    chosen = images or {
        "backend": settings.image_backend,
        "frontend": settings.image_frontend,
        "migrations": settings.image_migrations,
        "migrate": settings.image_migrate,
    }
    return {
        "schema": SCHEMA_VERSION,
        "environment": settings.environment,
        "images": {key: chosen[key] for key in IMAGE_KEYS},
        "colors": {
            color: {
                "backend_port": target.backend_ports[color],
                "frontend_port": target.frontend_ports[color],
                "upstreams": _upstreams(color, target),
            }
            for color in COLORS
        },
        "paths": {
            "backend_env_file": target.backend_env_file,
            "db_admin_env_file": target.db_admin_env_file,
            "state_dir": target.state_dir,
            "nginx_include": target.nginx_include,
        },
        "nginx": {
            "test_command": list(target.nginx_test_command),
            "reload_command": list(target.nginx_reload_command),
        },
        "health": {"backend_path": BACKEND_READY_PATH, "frontend_path": FRONTEND_HEALTH_PATH},
        # Before the old colour stops: VERIFY_ANSWERS answers in a row through nginx naming the
        # new colour's backend (the include's loopback server, nginx_upstreams.py).
        "verify": {
            "url": f"http://127.0.0.1:{target.nginx_verify_port}{host_layout.NGINX_VERIFY_PATH}",
            "answers": VERIFY_ANSWERS,
            "upstream_header": host_layout.VERIFY_UPSTREAM_HEADER,
        },
        "ready_timeout_seconds": settings.release_ready_timeout_seconds,
        "drain_seconds": settings.release_drain_seconds,
        "stop_timeout_seconds": STOP_TIMEOUT_SECONDS,
        "release_keep": settings.release_keep,
        "database_extensions": list(DATABASE_EXTENSIONS),
        "containers": {
            "prefix": target.container_prefix,
            "backend_run_args": backend_run_args(target),
            "frontend_run_args": [*_LOG_ARGS],
            "frontend_container_port": FRONTEND_CONTAINER_PORT,
            "port_env": BACKEND_PORT_ENV,
        },
        "commands": {
            "docker": list(target.docker_command),
            "psql": list(target.psql_command),
        },
    }


def render_deploy_config(
    settings: Settings, target: HostTarget | None = None, images: Mapping[str, str] | None = None
) -> str:
    """`deploy.json` for a host (pretty JSON, stable key order, trailing newline).

    Holds image references, ports, paths and timings only: the secrets are in the env files.
    """
    return json.dumps(deploy_config(settings, target, images), indent=2, sort_keys=True) + "\n"
