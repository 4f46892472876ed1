"""A droplet booted for real: the stack's own user-data under cloud-init 25 and systemd 257.

`boot_image` is the trixie rootfs (parity.trixie_image) plus the substitutions a container needs
where a droplet has a VM's kernel to itself. Each is named here, with what it replaces:

- SUBSTITUTION `sysctl`: /proc/sys is read-only in a container (and kernel.*/vm.* are the whole
  machine's). /usr/local/sbin/sysctl (first on PATH) answers `--system` by checking that every key
  of every sysctl.d file is one the kernel knows (unknown keys fail, as they would on a VM) and
  logging `would set KEY=VALUE` to /var/log/clipper-test-sysctl.log; any other call runs the real
  /usr/sbin/sysctl.
- SUBSTITUTION `swapon`: a container may not enable swap. /usr/local/sbin/swapon answers `-a`
  by checking each fstab swap entry (exists, mode 0600, a swap signature) and logging it to
  /var/log/clipper-test-swapon.log; any other call runs the real /usr/sbin/swapon.
- SUBSTITUTION cgroups: Docker mounts a container's cgroup v1 hierarchies read-only; the
  droplet's own dockerd needs them writable (a VM's are). clipper-test-cgroups-rw.service
  remounts them read-write (inside this container's own cgroup) before containerd and dockerd.
- SUBSTITUTION dockerd IPv6: dockerd fails to set up a bridge when it cannot write
  /proc/sys/net/ipv6 (read-only here); a drop-in sets DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1.

The container runs with SYS_ADMIN and NET_ADMIN (not --privileged, refused here), seccomp off
(runc inside needs keyctl), tmpfs /run and /tmp, /var/lib/docker on a volume (overlayfs cannot
sit on overlayfs), and its NoCloud seed at /var/lib/cloud/seed/nocloud (SUBSTITUTION for
DigitalOcean's metadata datasource). It joins three Docker networks, each its own subnet, so ufw
sees real source addresses: the first /28 of the stack's first admin CIDR, the stack's VPC
range, and 198.18.77.0/24 (in no admin CIDR) as "the internet"; a second stack's networks take
the next /28 and /24 (`slot`). From this machine, a connection
to the droplet's address on one of them comes from that bridge's gateway address, in that range.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.host import layout as host_layout

from .docker import DockerEngine
from .parity import derived_image, trixie_image
from .procs import ManagedService, ServiceError, wait_for_port, wait_until

__all__ = [
    "BootedHost",
    "HostNetworks",
    "boot_image",
    "substitute_user_data",
]

# RFC 2544's benchmark range: in no admin CIDR, used by nothing here (one /24 per slot).
INTERNET_BASE = "198.18.77.0/24"
# The admin network is the first /28 of the stack's first admin CIDR: this sandbox's own
# services live at other addresses of those documentation ranges (deb.debian.org is in
# 203.0.113.0/24), so a whole /24 bridge would hide them from the droplet.
ADMIN_SUBNET_PREFIX = 28

_SYSCTL_SHIM = """\
#!/bin/sh
# SUBSTITUTION for sysctl in a container (tests/support/booted_host.py): /proc/sys is read-only.
# `--system`: every key of every sysctl.d file must be known to the kernel; log, never write.
case " $* " in
  *" --system "*) ;;
  *) exec /usr/sbin/sysctl "$@" ;;
esac
log=/var/log/clipper-test-sysctl.log
status=0
for f in /usr/lib/sysctl.d/*.conf /run/sysctl.d/*.conf /etc/sysctl.d/*.conf /etc/sysctl.conf; do
  [ -f "$f" ] || continue
  grep -Ev '^[[:space:]]*([#;]|$)' "$f" | while IFS='=' read -r key value; do
    key=$(echo "$key" | tr -d ' \\t' | sed 's/^-//'); value=$(echo "$value" | sed 's/^ *//')
    if [ -e "/proc/sys/$(echo "$key" | tr . /)" ]; then
      echo "would set $key=$value ($f)" >> "$log"
    else
      echo "sysctl: cannot stat /proc/sys/$(echo "$key" | tr . /): No such file or directory" >&2
      echo "unknown $key ($f)" >> "$log"; exit 1
    fi
  done || status=1
done
exit $status
"""

_SWAPON_SHIM = """\
#!/bin/sh
# SUBSTITUTION for swapon in a container (tests/support/booted_host.py): swap is not permitted.
# `-a`: every fstab swap entry must be a mode-0600 file with a swap signature; log, never enable.
[ "$*" = "-a" ] || exec /usr/sbin/swapon "$@"
awk '$3 == "swap" && $1 !~ /^#/ {print $1}' /etc/fstab | while read -r file; do
  mode=$(stat -c %a "$file") || exit 1
  [ "$mode" = 600 ] || { echo "swapon: $file: insecure permissions $mode" >&2; exit 1; }
  sig=$(od -An -c -j 4086 -N 10 "$file" | tr -d ' ')
  [ "$sig" = SWAPSPACE2 ] || { echo "swapon: $file: no swap signature" >&2; exit 1; }
  echo "would enable $file ($(stat -c %s "$file") bytes, mode $mode)" \
    >> /var/log/clipper-test-swapon.log
done
"""

_CGROUPS_RW = """\
#!/bin/sh
# SUBSTITUTION (tests/support/booted_host.py): Docker mounts this container's cgroup v1
# hierarchies read-only; a VM's are writable, and the droplet's dockerd needs them.
mount -o remount,bind,rw /sys/fs/cgroup
for d in /sys/fs/cgroup/*; do
  [ -L "$d" ] || mount -o remount,bind,rw "$d" || true
done
"""

_CGROUPS_UNIT = """\
[Unit]
Description=TEST SUBSTITUTION: writable cgroup hierarchies (a VM has them)
DefaultDependencies=no
Before=containerd.service docker.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/clipper-test-cgroups-rw

[Install]
WantedBy=sysinit.target
"""

_DOCKERD_DROP_IN = """\
# TEST SUBSTITUTION (tests/support/booted_host.py): /proc/sys/net/ipv6 is read-only here.
[Service]
Environment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
"""

_BOOT_DOCKERFILE = """\
FROM {base}
COPY sysctl swapon clipper-test-cgroups-rw /usr/local/sbin/
COPY clipper-test-cgroups-rw.service /etc/systemd/system/
COPY docker-drop-in.conf /etc/systemd/system/docker.service.d/clipper-test-container.conf
RUN cd /usr/local/sbin && chmod 0755 sysctl swapon clipper-test-cgroups-rw \\
 && systemctl enable clipper-test-cgroups-rw.service
"""


def boot_image(engine: DockerEngine) -> str:
    """The trixie host rootfs with the container substitutions above (cached by content)."""
    base = trixie_image(engine)
    return derived_image(
        engine,
        "clipper-trixie-droplet",
        _BOOT_DOCKERFILE.format(base=base),
        {
            "sysctl": _SYSCTL_SHIM,
            "swapon": _SWAPON_SHIM,
            "clipper-test-cgroups-rw": _CGROUPS_RW,
            "clipper-test-cgroups-rw.service": _CGROUPS_UNIT,
            "docker-drop-in.conf": _DOCKERD_DROP_IN,
        },
    )


def substitute_user_data(
    user_data: str, *, replace_keys: dict[str, str], replace_files: dict[str, str]
) -> str:
    """The user-data with what DigitalOcean itself provides swapped for this test's own:
    `replace_keys` maps an authorized key line (the mock deploy key) to the test's key;
    `replace_files` maps a write_files path (the cluster's CA) to new content. Every other
    value stays as the program rendered it; each swap must hit something, or this fails."""
    assert user_data.startswith("#cloud-config\n"), "user-data is not a #cloud-config"
    doc: dict[str, Any] = yaml.safe_load(user_data)
    hits = 0
    for user in doc.get("users", []):
        keys = user.get("ssh_authorized_keys", [])
        for i, key in enumerate(keys):
            if key.strip() in replace_keys:
                keys[i] = replace_keys[key.strip()]
                hits += 1
    for entry in doc.get("write_files", []):
        if entry["path"] in replace_files:
            entry["content"] = replace_files[entry["path"]]
            hits += 1
    assert hits == len(replace_keys) + len(replace_files), "a substitution found nothing"
    return "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False, width=100)


@dataclass
class HostNetworks(ManagedService):
    """The three networks a test droplet joins (see the module docstring)."""

    engine: DockerEngine
    admin_cidr: str
    vpc_cidr: str
    prefix: str = field(default_factory=lambda: f"clipper-fb-{os.getpid()}")
    # Networks of two stacks alive at once take different slots (the /28 after, the next /24).
    slot: int = 0
    created: list[str] = field(default_factory=list)

    @property
    def names(self) -> dict[str, str]:
        return {role: f"{self.prefix}-{role}" for role in ("admin", "vpc", "internet")}

    def cidr(self, role: str) -> str:
        if role == "admin":
            admin = ipaddress.ip_network(self.admin_cidr)
            subnets = admin.subnets(new_prefix=max(admin.prefixlen, ADMIN_SUBNET_PREFIX))
            return str(list(subnets)[self.slot])
        if role == "internet":
            base = ipaddress.ip_network(INTERNET_BASE)
            return str(ipaddress.ip_network((int(base.network_address) + self.slot * 256, 24)))
        return self.vpc_cidr

    def address(self, role: str, index: int) -> str:
        """The `index`-th address of a network (1 is the gateway: this machine)."""
        return str(ipaddress.ip_network(self.cidr(role)).network_address + index)

    def start(self) -> None:
        for role, name in self.names.items():
            self.engine.run(["network", "rm", name], check=False)
            self.engine.run(
                ["network", "create", "--subnet", self.cidr(role),
                 "--gateway", self.address(role, 1), name]
            )  # fmt: skip
            self.created.append(name)

    def stop(self) -> None:
        for name in reversed(self.created):
            self.engine.run(["network", "rm", name], check=False)
        self.created.clear()


@dataclass
class BootedHost(ManagedService):
    """A systemd container booted from `user_data` with real cloud-init (NoCloud seed).

    `index` picks its address on every network (`.address(role)`). `ssh` connects as the
    deploy user with `key` from this machine, as pulumi-command does.
    """

    engine: DockerEngine
    image: str
    networks: HostNetworks
    name: str
    user_data: str
    key: Path
    index: int = 10
    volumes: Sequence[str] = ()
    seed: Path = field(init=False)

    def address(self, role: str = "admin") -> str:
        return self.networks.address(role, self.index)

    def start(self) -> None:
        self.seed = Path(tempfile.mkdtemp(prefix=f"{self.name}-seed-"))
        self.seed.chmod(0o755)
        (self.seed / "user-data").write_text(self.user_data)
        (self.seed / "meta-data").write_text(
            f"instance-id: {self.name}\nlocal-hostname: {self.name}\n"
        )
        self.engine.run(["rm", "-f", self.name], check=False)
        self.engine.run(["volume", "rm", "-f", f"{self.name}-docker"], check=False)
        names = self.networks.names
        volume_args = [arg for spec in self.volumes for arg in ("-v", spec)]
        self.engine.run(
            [
                "create", "--name", self.name, "--hostname", self.name,
                "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
                "--security-opt", "seccomp=unconfined",
                "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                "-v", f"{self.seed}:/var/lib/cloud/seed/nocloud:ro",
                "-v", f"{self.name}-docker:/var/lib/docker", *volume_args,
                "--network", names["admin"], "--ip", self.address("admin"),
                self.image, "/sbin/init",
            ]
        )  # fmt: skip
        for role in ("vpc", "internet"):
            self.engine.run(
                ["network", "connect", "--ip", self.address(role), names[role], self.name]
            )
        self.engine.run(["start", self.name])

    def stop(self) -> None:
        self.engine.run(["rm", "-f", "-v", self.name], check=False)
        self.engine.run(["volume", "rm", "-f", f"{self.name}-docker"], check=False)
        if hasattr(self, "seed"):
            shutil.rmtree(self.seed, ignore_errors=True)

    def exec(self, *argv: str, check: bool = True, timeout: float = 120) -> str:
        """Run `argv` as root on the host (docker exec); its stdout."""
        proc = self.engine.run(["exec", self.name, *argv], check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise ServiceError(
                "booted host", " ".join(argv)[:60], f"exit {proc.returncode}\n{proc.stderr}"
            )
        return proc.stdout

    def sh(self, script: str, *, check: bool = True) -> str:
        return self.exec("sh", "-c", script, check=check)

    def wait_for_cloud_init(self, timeout: float = 600) -> str:
        """Block until cloud-init finished (any outcome); its `status --long` text."""
        proc = self.engine.run(
            ["exec", self.name, "cloud-init", "status", "--wait", "--long"],
            check=False,
            timeout=timeout,
        )
        return proc.stdout + proc.stderr

    def ssh_args(self, *, user: str = host_layout.DEPLOY_USER, role: str = "admin") -> list[str]:
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.key), "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", f"{user}@{self.address(role)}",
        ]  # fmt: skip

    def ssh(
        self, command: str, stdin: str | None = None, *, timeout: float = 600, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """One SSH session running `command` with `stdin`, as pulumi-command runs a command."""
        return subprocess.run(
            [*self.ssh_args(**kwargs), command],
            input=stdin or "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def reboot(self, timeout: float = 120) -> None:
        """`docker restart`: systemd goes down and comes back (cloud-init does not re-run its
        per-instance modules: the instance id is the same)."""
        self.engine.run(["restart", "-t", "30", self.name], timeout=timeout)

        def running() -> bool:
            state = self.exec("systemctl", "is-system-running", check=False).strip()
            return state in ("running", "degraded")

        if not wait_until(running, timeout=timeout, interval=1):
            raise ServiceError("booted host", "reboot", "systemd did not come back")
        if not wait_for_port(self.address(), 22, 30):
            raise ServiceError("booted host", "reboot", "sshd did not come back")


@contextmanager
def timed(label: str, record: dict[str, float]) -> Iterator[None]:
    """Record how long a block took (for the test's report, never for an assertion)."""
    started = time.monotonic()
    try:
        yield
    finally:
        record[label] = round(time.monotonic() - started, 1)
