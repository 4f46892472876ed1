"""The fleet as the stack's outputs describe it: hosts per role, the deploy key, the site.

`pulumi stack output --json --show-secrets -s STACK` prints them; `--outputs-file F` reads the
same JSON from a file (tests, and operators without the CLI at hand). The outputs are written
by components/stack.py: `fleetHosts` (plain: names and addresses per role) and
`deployPrivateKey` (a secret output).
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOSTS_OUTPUT = "fleetHosts"
KEY_OUTPUT = "deployPrivateKey"
SITE_OUTPUT = "siteUrl"
IMAGES_OUTPUT = "releaseImages"


class OutputsError(Exception):
    """The stack outputs are missing or not what this version of the program exports."""


@dataclass(frozen=True)
class FleetHost:
    """One host: its short name (`app-1`), droplet name, the address SSH reaches, whether it
    runs the nightly backup, and its SSH host key when the outputs pin one."""

    name: str
    droplet: str
    address: str
    backups: bool = False
    host_key: str | None = None


@dataclass(frozen=True)
class Fleet:
    """A stack's hosts of one role, the deploy user's private key, and what was shipped."""

    stack: str
    hosts: tuple[FleetHost, ...]
    private_key: str = field(repr=False)
    site_url: str | None = None
    release_images: Mapping[str, str] = field(default_factory=dict)


def pulumi_outputs_argv(stack: str) -> list[str]:
    """The Pulumi CLI call that prints every output, secrets in clear (to our pipe only)."""
    return ["pulumi", "stack", "output", "--json", "--show-secrets", "-s", stack]


Run = Callable[..., "subprocess.CompletedProcess[str]"]


def read_outputs(stack: str, outputs_file: Path | None, run: Run = subprocess.run) -> Any:
    """The outputs document from `outputs_file`, or from the Pulumi CLI."""
    if outputs_file is not None:
        try:
            text = outputs_file.read_text(encoding="utf-8")
            mode = outputs_file.stat().st_mode
        except OSError as err:
            raise OutputsError(f"cannot read --outputs-file {outputs_file}: {err}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            # It holds the deploy key: say so, as ssh does for a key file anyone can read.
            print(
                f"ops: warning: {outputs_file} (it holds the deploy key) is readable by others:"
                f" chmod 600 {outputs_file}",
                file=sys.stderr,
            )
        where = str(outputs_file)
    else:
        argv = pulumi_outputs_argv(stack)
        try:
            proc = run(argv, capture_output=True, text=True, check=False, timeout=120)
        except FileNotFoundError:
            raise OutputsError(
                "the Pulumi CLI is not installed: install it, or pass --outputs-file F with"
                f" the JSON of `{' '.join(argv)}`"
            ) from None
        if proc.returncode != 0:
            raise OutputsError(
                f"`{' '.join(argv)}` failed (exit {proc.returncode}): {proc.stderr.strip()}"
            )
        text, where = proc.stdout, f"pulumi stack output -s {stack}"
    try:
        return json.loads(text)
    except ValueError as err:
        raise OutputsError(f"{where} is not JSON: {err}") from None


def _host(entry: Any, role: str, index: int) -> FleetHost:
    where = f"{HOSTS_OUTPUT}.{role}[{index}]"
    if not isinstance(entry, dict):
        raise OutputsError(f"{where} is not an object")
    missing = [key for key in ("name", "publicAddress") if not entry.get(key)]
    if missing:
        raise OutputsError(f"{where} has no {', '.join(missing)}")
    return FleetHost(
        name=str(entry["name"]),
        droplet=str(entry.get("droplet") or entry["name"]),
        address=str(entry["publicAddress"]),
        backups=bool(entry.get("backups", False)),
        host_key=str(entry["hostKey"]) if entry.get("hostKey") else None,
    )


def fleet_from_outputs(stack: str, doc: Any, role: str = "app") -> Fleet:
    """Validate the outputs and pick the hosts of `role`; every problem names the output."""
    if not isinstance(doc, dict):
        raise OutputsError("the stack outputs are not a JSON object")
    absent = [key for key in (HOSTS_OUTPUT, KEY_OUTPUT) if key not in doc]
    if absent:
        raise OutputsError(
            f"stack {stack} has no output {' or '.join(absent)}: run `pulumi up -s {stack}`"
            " with this version of the program first (it exports them)"
        )
    roles = doc[HOSTS_OUTPUT]
    if not isinstance(roles, dict) or not isinstance(roles.get(role), list) or not roles[role]:
        known = ", ".join(sorted(roles)) if isinstance(roles, dict) else "none"
        raise OutputsError(f"{HOSTS_OUTPUT} has no hosts of role {role!r} (roles: {known})")
    key = doc[KEY_OUTPUT]
    if not isinstance(key, str) or "PRIVATE KEY" not in key:
        raise OutputsError(
            f"{KEY_OUTPUT} is not a private key: read the outputs with --show-secrets"
        )
    hosts = tuple(_host(entry, role, n) for n, entry in enumerate(roles[role]))
    names = [host.name for host in hosts]
    if len(set(names)) != len(names):
        raise OutputsError(f"{HOSTS_OUTPUT}.{role} names a host twice: {names}")
    images = doc.get(IMAGES_OUTPUT)
    return Fleet(
        stack=stack,
        hosts=hosts,
        private_key=key,
        site_url=str(doc[SITE_OUTPUT]) if doc.get(SITE_OUTPUT) else None,
        release_images=dict(images) if isinstance(images, dict) else {},
    )


def select_hosts(fleet: Fleet, names: Sequence[str]) -> tuple[FleetHost, ...]:
    """The hosts named by `--host` (all when none), in fleet order; an unknown name stops."""
    if not names:
        return fleet.hosts
    known = {host.name for host in fleet.hosts}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise OutputsError(f"no host {', '.join(unknown)} in {fleet.stack}; known: {sorted(known)}")
    return tuple(host for host in fleet.hosts if host.name in names)
