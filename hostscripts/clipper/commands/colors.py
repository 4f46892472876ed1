"""The exact `docker run` of each of a colour's containers, and the calls on a whole colour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..containers import (
    LABEL_COLOR,
    LABEL_FINGERPRINT,
    LABEL_RELEASE,
    LABEL_ROLE,
    LABEL_VERSION,
)
from ..release_config import COLORS, ROLES, Config
from . import docker

# Set only once a colour serves: a half-started colour must not come back after a reboot.
SERVING_RESTART_POLICY = "unless-stopped"


def labels(color: str, role: str, release: Mapping[str, Any]) -> dict[str, str]:
    return {
        LABEL_RELEASE: release["id"],
        LABEL_FINGERPRINT: release["fingerprint"],
        LABEL_COLOR: color,
        LABEL_VERSION: release["version"],
        LABEL_ROLE: role,
    }


def backend_env_names(config: Config, env: Mapping[str, str]) -> list[str]:
    """The variables the backend gets: the env file's, and its port."""
    return sorted({*env, config.port_env})


def backend_environment(config: Config, color: str, env: Mapping[str, str]) -> dict[str, str]:
    """The values behind `backend_env_names` (for the docker CLI's environment)."""
    return {**env, config.port_env: str(config.colors[color].backend_port)}


def run_backend(
    config: Config, color: str, release: Mapping[str, Any], env_names: Sequence[str]
) -> list[str]:
    """deploy.json's `containers.backend_run_args` verbatim (network, logs, health check), then
    each variable by name only."""
    return docker.run_detached(
        config.docker,
        config.container(color, "backend"),
        labels=labels(color, "backend", release),
        options=[*config.backend_run_args, *docker.env_name_args(env_names)],
        image=release["images"]["backend"],
        stop_timeout=config.stop_timeout,
    )


def run_frontend(config: Config, color: str, release: Mapping[str, Any]) -> list[str]:
    """The frontend on its colour's loopback port."""
    port = config.colors[color].frontend_port
    return docker.run_detached(
        config.docker,
        config.container(color, "frontend"),
        labels=labels(color, "frontend", release),
        options=[
            *config.frontend_run_args,
            "-p",
            f"127.0.0.1:{port}:{config.frontend_container_port}",
        ],
        image=release["images"]["frontend"],
        stop_timeout=config.stop_timeout,
    )


def names(config: Config, color: str) -> list[str]:
    return [config.container(color, role) for role in ROLES]


def remove(config: Config, color: str) -> list[str]:
    return docker.remove_force(config.docker, *names(config, color))


def stop(config: Config, color: str) -> list[str]:
    return docker.stop(config.docker, names(config, color), config.stop_timeout)


def keep_after_reboot(config: Config, color: str) -> list[str]:
    return docker.set_restart_policy(config.docker, names(config, color), SERVING_RESTART_POLICY)


def forget_after_reboot(config: Config, color: str) -> list[str]:
    """A stopped colour kept for rollback must not start again after a reboot."""
    return docker.set_restart_policy(config.docker, names(config, color), "no")


def inspect_all(config: Config) -> list[str]:
    return docker.inspect_containers(
        config.docker, [config.container(c, r) for c in COLORS for r in ROLES]
    )


MIGRATE_RUNNER = "migrate"
MIGRATIONS_COPY = "migrations-copy"


def migrate_create(
    config: Config, image: str, database_url: str, command: Sequence[str]
) -> list[str]:
    """golang-migrate's container: host network (the cluster's private address), the password
    and session bounds by name (values in the CLI's environment), the files copied in later."""
    return docker.create(
        config.docker,
        f"{config.prefix}-{MIGRATE_RUNNER}",
        ["--network", "host", "-e", "PGPASSWORD", "-e", "PGOPTIONS"],
        image,
        ["-path", "/migrations", "-database", database_url, *command],
    )


def migrations_copy_create(config: Config, image: str) -> list[str]:
    """A never-started container of the data-only migrations image, to copy /migrations out."""
    return docker.create(config.docker, f"{config.prefix}-{MIGRATIONS_COPY}", [], image,
                         [MIGRATIONS_COPY])  # fmt: skip
