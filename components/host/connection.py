"""How the program connects to a droplet: as the deploy user, with the stack's deploy key (kept
secret), and the droplet's pinned host key (learned once, components/host/keys.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components.host import layout as host_layout

# A new droplet takes a minute or two to boot and create the deploy user: keep dialling.
SSH_DIAL_ERROR_LIMIT = 60
SSH_PER_DIAL_TIMEOUT_SECONDS = 30


def deploy_ssh(
    address: pulumi.Input[str],
    private_key: pulumi.Input[str],
    host_key: pulumi.Input[str] | None,
) -> command.remote.ConnectionArgs:
    """The deploy user's connection to a droplet: the deploy key (kept secret), dialling long
    enough for a new droplet to boot, and the host key to accept (None only for the one
    trust-on-first-use read of `components.host.keys.read_host_key_command`)."""
    return command.remote.ConnectionArgs(
        host=address,
        user=host_layout.DEPLOY_USER,
        private_key=pulumi.Output.secret(private_key),
        host_key=host_key,
        dial_error_limit=SSH_DIAL_ERROR_LIMIT,
        per_dial_timeout=SSH_PER_DIAL_TIMEOUT_SECONDS,
    )


@dataclass(frozen=True)
class AppHost:
    """One app droplet: a stable short name, its id, the address SSH reaches it at and the host
    key pinned for it (components/host/keys.py)."""

    name: str
    droplet_id: pulumi.Input[str]
    address: pulumi.Input[str]
    host_key: pulumi.Input[str]
