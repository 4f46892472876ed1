"""docker CLI calls. `docker` is deploy.json's `commands.docker` argv prefix (for example
`["docker", "--config", "/etc/clipper/registry"]`), used for every call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Argv = list[str]


def label_args(labels: Mapping[str, str]) -> Argv:
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def env_name_args(names: Sequence[str]) -> Argv:
    """`-e NAME` for each variable: the value travels in the docker CLI's environment, never
    on its command line (which `ps` and sudo's log show)."""
    return [arg for name in sorted(names) for arg in ("-e", name)]


def run_detached(
    docker: Sequence[str],
    name: str,
    *,
    labels: Mapping[str, str],
    options: Sequence[str],
    image: str,
    stop_timeout: int,
) -> Argv:
    """`docker run -d` with no restart policy: a crash shows its exit code instead of a restart
    loop, and a half-started container does not come back after a reboot."""
    return [
        *docker, "run", "-d", "--name", name, *label_args(labels),
        "--stop-timeout", str(stop_timeout), *options, image,
    ]  # fmt: skip


def remove_force(docker: Sequence[str], *names: str) -> Argv:
    return [*docker, "rm", "-f", *names]


def remove(docker: Sequence[str], name: str) -> Argv:
    """Without -f: a container still running is left alone."""
    return [*docker, "rm", name]


def stop(docker: Sequence[str], names: Sequence[str], grace_seconds: int) -> Argv:
    return [*docker, "stop", "-t", str(grace_seconds), *names]


def start(docker: Sequence[str], *names: str) -> Argv:
    return [*docker, "start", *names]


def start_attached(docker: Sequence[str], name: str) -> Argv:
    return [*docker, "start", "--attach", name]


def wait(docker: Sequence[str], name: str) -> Argv:
    return [*docker, "wait", name]


def set_restart_policy(docker: Sequence[str], names: Sequence[str], policy: str) -> Argv:
    return [*docker, "update", "--restart", policy, *names]


def inspect_containers(docker: Sequence[str], names: Sequence[str]) -> Argv:
    return [*docker, "container", "inspect", *names]


def image_id(docker: Sequence[str], ref: str) -> Argv:
    return [*docker, "image", "inspect", "--format", "{{.Id}}", ref]


def pull(docker: Sequence[str], ref: str) -> Argv:
    return [*docker, "pull", "--quiet", ref]


def remove_image(docker: Sequence[str], ref: str) -> Argv:
    return [*docker, "image", "rm", ref]


def logs_tail(docker: Sequence[str], name: str, lines: int) -> Argv:
    return [*docker, "logs", "--tail", str(lines), name]


def create(docker: Sequence[str], name: str, options: Sequence[str], image: str,
           args: Sequence[str]) -> Argv:  # fmt: skip
    """`docker create`: the container exists but never starts until `start`."""
    return [*docker, "create", "--name", name, *options, image, *args]


def copy(docker: Sequence[str], source: str, target: str) -> Argv:
    """`docker cp`: `name:/path` on one side. Copies, unlike a bind mount, work when the engine
    runs on another machine than this script."""
    return [*docker, "cp", source, target]
