"""Every remote action of the fleet command, as the exact argv run on a host (data, tested).

They drive the host package's own command lines and nothing else: `clipper-release status
--json` and `rollback [--to ID]`, `clipper-backup list --json`, the containers' logs and nginx's
access log. `sudo -n` never prompts: a host whose sudo would ask fails at once instead of
hanging the fleet.
"""

from __future__ import annotations

from typing import Final, Literal

from components.host import layout as host_layout

LogSource = Literal["backend", "frontend", "nginx"]
LOG_SOURCES: Final[tuple[LogSource, ...]] = ("backend", "frontend", "nginx")
SUDO: Final[tuple[str, ...]] = ("sudo", "-n")


def release_status() -> list[str]:
    """The host's colours, releases, health, images and lock holder, as JSON."""
    return [*SUDO, host_layout.RELEASE_SCRIPT, "status", "--json"]


def release_rollback(to: str | None) -> list[str]:
    """Back to `to` (a release id), or to the host's previous release."""
    return [*SUDO, host_layout.RELEASE_SCRIPT, "rollback", *(("--to", to) if to else ())]


def backup_list() -> list[str]:
    """The complete backups in the bucket, oldest first, as JSON (on the backup host only)."""
    return [*SUDO, host_layout.BACKUP_SCRIPT, "list", "--json"]


def container_logs(container: str, since: str | None, lines: int, follow: bool) -> list[str]:
    """A container's recent lines (stdout and stderr), with docker's timestamps."""
    argv = [*SUDO, "docker", "logs", "--timestamps", "--tail", str(lines)]
    if since:
        argv += ["--since", since]
    if follow:
        argv.append("--follow")
    return [*argv, container]


def access_log(lines: int, follow: bool) -> list[str]:
    """nginx's JSON access log (one object per line; `--since` is applied on our side)."""
    return [*SUDO, "tail", "-n", str(lines), *(("-F",) if follow else ()),
            host_layout.NGINX_ACCESS_LOG]  # fmt: skip
