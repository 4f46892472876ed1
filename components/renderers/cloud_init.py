"""Cloud-init user-data of the stack's droplets: hardens a host and prepares it for its role.

`render_host_user_data` is what every host gets (the deploy user, SSH, fail2ban, unattended
upgrades, ufw, Docker, time sync, swap, log limits, node_exporter's port; node_exporter itself
is a pinned container the monitoring component installs); `render_app_user_data` adds
what an app host needs (nginx and the edge files, the Valkey TLS tunnel, psql). Another role
(the monitoring host) calls `render_host_user_data` with its own firewall rules, packages,
files and commands.

What it does, in cloud-init's own order:
- init stage: the `deploy` user (admin keys + the Pulumi deploy key, docker group, sudo for
  exactly the program's commands: components/renderers/sudoers.py), no root login, no password
  login; the hardening files (`write_files`) land before any package is installed, so each
  service starts with its final config;
- final stage: package update/upgrade and install (Ubuntu's docker.io, nginx, fail2ban, ufw,
  unattended-upgrades, chrony, stunnel4, postgresql-client), swap,
  time sync, the deferred edge files (nginx would not start with them before it is installed),
  then one setup script (`runcmd`) that turns on the firewall and the services and, as its very
  last step, writes host_layout.HOST_READY_FILE. The script is the static
  scripts/clipper-host-setup.sh, the same for every host; what differs (firewall rules, the
  role's steps) is in HOST_SETUP_CONFIG beside it.

The setup script runs with `set -euo pipefail`: a failed step stops it before the marker, so
`cloud-init status --wait` reports the error and the release component never deploys onto a
half-prepared host.

Secrets never go here (DigitalOcean shows user-data to anyone with read access to the droplet,
and it is kept in the droplet's metadata): passwords and keys reach the host over SSH
(host_layout.BACKEND_ENV_FILE). `render_app_user_data` refuses text that looks like secret
material.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from components.host.files import HostFile
from components.host.layout import (
    ALLOY_HTTP_PORT,
    DEPLOY_USER,
    ETC_DIR,
    HOST_READY_FILE,
    HOST_SETUP_CONFIG,
    HOST_SETUP_SCRIPT,
    NODE_EXPORTER_PORT,
    NODE_EXPORTER_TEXTFILE_DIR,
    STATE_DIR,
)
from components.renderers.host_scripts import render_script_config, script_text
from components.renderers.sudoers import (
    INSTALLER_PATH,
    SUDOERS_FILE,
    render_deploy_sudoers,
    render_file_installer,
)
from components.renderers.valkey_tunnel import (
    TUNNEL_PACKAGES,
    TUNNEL_SERVICE,
    TunnelEndpoints,
    valkey_tunnel_host_files,
)
from components.settings import Settings

SSHD_HARDENING_FILE = "/etc/ssh/sshd_config.d/00-clipper-hardening.conf"
FAIL2BAN_JAIL_FILE = "/etc/fail2ban/jail.d/clipper-sshd.local"
AUTO_UPGRADES_FILE = "/etc/apt/apt.conf.d/21clipper-auto-upgrades"
UNATTENDED_UPGRADES_FILE = "/etc/apt/apt.conf.d/52clipper-unattended-upgrades"
DOCKER_DAEMON_FILE = "/etc/docker/daemon.json"
JOURNALD_FILE = "/etc/systemd/journald.conf.d/60-clipper.conf"
SYSCTL_FILE = "/etc/sysctl.d/60-clipper.conf"
NGINX_JSON_LOGROTATE_FILE = "/etc/logrotate.d/clipper-nginx-json"
SWAP_FILE = "/swapfile"

# DigitalOcean rejects user-data above 64 KiB.
MAX_USER_DATA_BYTES = 64 * 1024

BASE_PACKAGES: tuple[str, ...] = (
    "docker.io",  # Docker engine from Ubuntu's archive (security updates via unattended-upgrades)
    "fail2ban",
    "python3-systemd",  # fail2ban's journal backend
    "ufw",
    "unattended-upgrades",
    "chrony",
    "logrotate",
    "ca-certificates",
    "curl",
)
APP_PACKAGES: tuple[str, ...] = (
    "nginx",
    "postgresql-client",  # the release script creates extensions with psql
    *TUNNEL_PACKAGES,
)
# certbot only where the host ends TLS itself (no load balancer in front).
CERTBOT_PACKAGES: tuple[str, ...] = ("certbot",)

# Shapes of secret material that must never be in user-data.
_SECRET_SHAPES = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b[a-z]+(ql)?s?://[^:/\s@]*:[^@\s]+@"),  # a URI with a password
    re.compile(r"(?m)^\s*[A-Z_]*(PASSWORD|SECRET|API_KEY)[A-Z_]*\s*=\s*\S"),
)


@dataclass(frozen=True)
class UfwRule:
    """One `ufw allow` rule: TCP `port` from `source` ("any" for everyone)."""

    port: int
    source: str
    comment: str

    def command(self) -> str:
        source = "" if self.source == "any" else f" from {self.source}"
        return (
            f"ufw allow proto tcp{source} to any port {self.port}"
            f" comment {shlex.quote(self.comment)}"
        )

    def config_entry(self) -> str:
        """The rule as the setup script's UFW_RULES reads it: `PORT SOURCE COMMENT`; the script
        runs exactly `command()` for it."""
        if " " in self.source:
            raise ValueError(f"a ufw source has no spaces: {self.source!r}")
        return f"{self.port} {self.source} {self.comment}"


def base_ufw_rules(settings: Settings) -> list[UfwRule]:
    """Every host: SSH from the admin networks, node_exporter from the VPC."""
    return [
        *(UfwRule(22, cidr, "ssh from an admin network") for cidr in settings.admin_cidrs),
        UfwRule(NODE_EXPORTER_PORT, settings.vpc_ip_range, "node_exporter from the VPC"),
    ]


def ufw_rules(settings: Settings) -> list[UfwRule]:
    """An app host's firewall: the base rules, Alloy's metrics from the VPC, and web from the
    internet (or, behind the load balancer, HTTP from the VPC only). Everything else is denied
    inbound."""
    rules = base_ufw_rules(settings)
    rules.append(UfwRule(ALLOY_HTTP_PORT, settings.vpc_ip_range, "alloy from the VPC"))
    if settings.uses_load_balancer:
        # TLS ends at the load balancer, which reaches nginx on :80 over the VPC.
        rules.append(UfwRule(80, settings.vpc_ip_range, "http from the load balancer (VPC)"))
    else:
        rules.append(UfwRule(80, "any", "http (ACME and redirect to https)"))
        rules.append(UfwRule(443, "any", "https"))
    return rules


_SSHD_HARDENING = f"""\
# Clipper host SSH policy. sshd uses the first value it reads for each keyword, and this
# file sorts first in sshd_config.d, so nothing later can loosen it.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PermitRootLogin no
PubkeyAuthentication yes
AuthenticationMethods publickey
AllowUsers {DEPLOY_USER}
MaxAuthTries 3
LoginGraceTime 30
X11Forwarding no
AllowAgentForwarding no
"""

_FAIL2BAN_JAIL = """\
# Ban addresses that keep failing SSH authentication (the journal is the log source).
[sshd]
enabled = true
backend = systemd
port = ssh
maxretry = 5
findtime = 10m
bantime = 1h
"""

_AUTO_UPGRADES = """\
// Refresh package lists and run unattended-upgrades every day.
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APT::Periodic::AutocleanInterval "7";
"""

_UNATTENDED_UPGRADES = """\
// Security updates only, installed automatically. No automatic reboot: with one droplet a reboot
// is an outage, and with several they must not reboot together (README: rolling the hosts).
Unattended-Upgrade::Allowed-Origins {
        "${distro_id}:${distro_codename}-security";
};
Unattended-Upgrade::Remove-Unused-Kernel-Packages "true";
Unattended-Upgrade::Remove-Unused-Dependencies "true";
Unattended-Upgrade::Automatic-Reboot "false";
"""

_JOURNALD = """\
# Bound the journal: it holds every service's logs, including the tunnel's and Docker's.
[Journal]
Compress=yes
SystemMaxUse=1G
SystemKeepFree=2G
MaxRetentionSec=30day
"""

_SYSCTL = """\
# Prefer RAM over swap; swap is there to survive a spike, not to run in.
vm.swappiness = 10
# Room for bursts of connections to nginx.
net.core.somaxconn = 4096
"""

_NGINX_JSON_LOGROTATE = """\
# nginx's own logrotate file covers *.log; the JSON access log needs its own.
/var/log/nginx/*.json {
    daily
    rotate 14
    missingok
    notifempty
    compress
    delaycompress
    create 0640 www-data adm
    sharedscripts
    postrotate
        invoke-rc.d nginx rotate >/dev/null 2>&1 || true
    endscript
}
"""


def render_host_setup_config(firewall: Sequence[UfwRule], role_commands: Sequence[str] = ()) -> str:
    """HOST_SETUP_CONFIG, what the setup script (scripts/clipper-host-setup.sh) reads: the
    firewall's allow list, `role_commands` (one shell line each; `step "..."` prints a heading)
    to run after the steps every host takes, and the ready marker."""
    for command in role_commands:
        if "\n" in command:
            raise ValueError(f"a setup command must be one line: {command!r}")
    return render_script_config(
        f"Sourced by {HOST_SETUP_SCRIPT}; rendered by components/renderers/cloud_init.py.",
        {
            "DEPLOY_USER": DEPLOY_USER,
            "UFW_RULES": [rule.config_entry() for rule in firewall],
            "ROLE_COMMANDS": list(role_commands),
            # node_exporter (a pinned container, components/renderers/monitoring_units.py)
            # reads the host scripts' metrics from the textfile dir.
            "HOST_DIRS": [STATE_DIR, ETC_DIR, NODE_EXPORTER_TEXTFILE_DIR],
            "READY_FILE": HOST_READY_FILE,
        },
    )


def app_setup_commands(edge_commands: Sequence[str] = ()) -> list[str]:
    """An app host's own setup steps: start the Valkey tunnel, then nginx with the edge's
    bootstrap commands (removing the stock site, self-signed placeholder, certbot timers, first
    issuance attempt)."""
    return [
        'step "valkey tls tunnel"',
        f"systemctl enable {TUNNEL_SERVICE}",
        f"systemctl restart {TUNNEL_SERVICE}",
        'step "nginx"',
        *edge_commands,
        "nginx -t -q",
        "systemctl enable nginx.service",
        "systemctl reload-or-restart nginx.service",
    ]


def render_docker_daemon_config() -> str:
    """/etc/docker/daemon.json: bounded container logs; containers survive a dockerd restart
    (an unattended security upgrade of docker.io restarts the daemon)."""
    config = {
        "log-driver": "json-file",
        "log-opts": {"max-size": "20m", "max-file": "5"},
        "live-restore": True,
    }
    return json.dumps(config, indent=2) + "\n"


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so the user-data stays readable in `pulumi preview`."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _str_presenter)


def _write_file(file: HostFile, *, defer: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": file.path,
        "owner": file.owner,
        "permissions": file.mode,
        "content": file.content,
    }
    if defer:
        entry["defer"] = True
    return entry


def _base_files(
    settings: Settings, firewall: Sequence[UfwRule], role_commands: Sequence[str]
) -> list[HostFile]:
    return [
        HostFile(SUDOERS_FILE, render_deploy_sudoers(settings.db_version), "0440"),
        HostFile(INSTALLER_PATH, render_file_installer(), "0755"),
        HostFile(SSHD_HARDENING_FILE, _SSHD_HARDENING, "0644"),
        HostFile(FAIL2BAN_JAIL_FILE, _FAIL2BAN_JAIL, "0644"),
        HostFile(AUTO_UPGRADES_FILE, _AUTO_UPGRADES, "0644"),
        HostFile(UNATTENDED_UPGRADES_FILE, _UNATTENDED_UPGRADES, "0644"),
        HostFile(DOCKER_DAEMON_FILE, render_docker_daemon_config(), "0644"),
        HostFile(JOURNALD_FILE, _JOURNALD, "0644"),
        HostFile(SYSCTL_FILE, _SYSCTL, "0644"),
        HostFile(HOST_SETUP_CONFIG, render_host_setup_config(firewall, role_commands), "0644"),
        HostFile(HOST_SETUP_SCRIPT, script_text("clipper-host-setup"), "0755"),
    ]


def app_packages(settings: Settings) -> list[str]:
    """Ubuntu packages an app host installs on top of BASE_PACKAGES."""
    extra = () if settings.uses_load_balancer else CERTBOT_PACKAGES
    return [*APP_PACKAGES, *extra]


def render_host_user_data(
    settings: Settings,
    *,
    deploy_public_key: str,
    firewall: Sequence[UfwRule],
    packages: Sequence[str] = (),
    files: Sequence[HostFile] = (),
    deferred_files: Sequence[HostFile] = (),
    setup_commands: Sequence[str] = (),
) -> str:
    """The `#cloud-config` user-data of any Clipper host.

    `firewall` is the complete ufw allow list (see `base_ufw_rules`); `packages` come on top of
    BASE_PACKAGES; `files` are written before the packages are installed, `deferred_files` after
    (for files of a package whose service must not start with them first); `setup_commands` run
    at the end of the setup script, before the ready marker. No argument may carry a secret.
    """
    early = [*_base_files(settings, firewall, setup_commands), *files]
    paths = [f.path for f in [*early, *deferred_files]]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise ValueError(f"two host files claim the same path: {duplicates}")

    document: dict[str, Any] = {
        "timezone": "Etc/UTC",
        "disable_root": True,
        "ssh_pwauth": False,
        "groups": ["docker"],
        "users": [
            {
                "name": DEPLOY_USER,
                "gecos": "Clipper deploys (Pulumi remote commands) and operators",
                "shell": "/bin/bash",
                "groups": ["docker"],
                "lock_passwd": True,
                # No sudo rule here: SUDOERS_FILE (write_files) allows exactly the commands
                # the program and the README's procedures run.
                "ssh_authorized_keys": [deploy_public_key, *settings.ssh_admin_public_keys],
            }
        ],
        "package_update": True,
        "package_upgrade": True,
        "packages": list(dict.fromkeys([*BASE_PACKAGES, *packages])),
        "ntp": {"enabled": True, "ntp_client": "chrony"},
        "write_files": [
            *(_write_file(f) for f in early),
            *(_write_file(f, defer=True) for f in deferred_files),
        ],
        "runcmd": [[HOST_SETUP_SCRIPT]],
        "final_message": "clipper host: cloud-init finished after $UPTIME seconds",
    }
    if settings.app_swap_mb:
        size = settings.app_swap_mb * 1024 * 1024
        document["swap"] = {"filename": SWAP_FILE, "size": size, "maxsize": size}

    text = "#cloud-config\n" + yaml.dump(
        document, Dumper=_LiteralDumper, sort_keys=False, width=100, allow_unicode=True
    )
    for shape in _SECRET_SHAPES:
        if shape.search(text):
            raise ValueError(f"user-data would contain secret material ({shape.pattern})")
    if len(text.encode()) > MAX_USER_DATA_BYTES:
        raise ValueError(
            f"user-data is {len(text.encode())} bytes; DigitalOcean allows {MAX_USER_DATA_BYTES}"
        )
    return text


def render_app_user_data(
    settings: Settings,
    *,
    deploy_public_key: str,
    valkey_host: str,
    valkey_port: int,
    valkey_ca_certificate: str,
    extra_files: Sequence[HostFile] = (),
    extra_commands: Sequence[str] = (),
) -> str:
    """The `#cloud-config` user-data of an app droplet.

    `deploy_public_key` is the DeployKey's public line; `valkey_*` are the cache cluster's private
    host, port and CA certificate (none of them secret); `extra_files` (the edge's nginx site,
    upstream include, certbot units) are written after the packages are installed, and
    `extra_commands` run in the setup script before nginx is (re)started.
    """
    tunnel = TunnelEndpoints(
        listen_port=settings.cache_tunnel_port, valkey_host=valkey_host, valkey_port=valkey_port
    )
    return render_host_user_data(
        settings,
        deploy_public_key=deploy_public_key,
        firewall=ufw_rules(settings),
        packages=app_packages(settings),
        files=[
            *valkey_tunnel_host_files(tunnel, valkey_ca_certificate),
            HostFile(NGINX_JSON_LOGROTATE_FILE, _NGINX_JSON_LOGROTATE, "0644"),
        ],
        deferred_files=extra_files,
        setup_commands=app_setup_commands(extra_commands),
    )
