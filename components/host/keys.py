"""The droplets' SSH host keys: learned once, pinned by every connection (the connection
itself, deploy user and key, is components/host/connection.py).

Host keys are trusted on first use and recorded in state. A droplet makes its own host keys
at first boot (cloud-init, before sshd starts), so no private key ever travels in user-data.
The first command on a new droplet, `<name>-host-key`, connects without a pinned key (the only
such connection; it runs again only when the droplet is replaced), reads the droplet's ed25519
host public key and keeps it as its stdout. Every other remote command pins that key:
pulumi-command (>= 1.1.0, `connection.hostKey`) then offers only that key's algorithm and
accepts only that exact key (provider/pkg/provider/remote/connection.go: `ssh.FixedHostKey`,
`HostKeyAlgorithms = [key.Type()]`). A changed key stops the update at the first command of
that host with "ssh: handshake failed: ssh: host key mismatch"; README, "SSH host keys", says
what to check and how to accept a legitimately new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_command as command

from components.host.connection import deploy_ssh
from components.renames import formerly

HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"
HOST_KEY_TYPE = "ssh-ed25519"


def read_host_key_command(path: str = HOST_KEY_FILE) -> str:
    """Print the host's ed25519 public key as `ssh-ed25519 <base64>` (no comment), or fail.

    `path` is sshd's key file; only tests change it (their sshd keeps its key elsewhere)."""
    return (
        f"set -eu; read -r kind key _ < {path}; "
        f'if [ "$kind" != {HOST_KEY_TYPE} ]; then'
        f' echo "{path} holds a $kind key, not {HOST_KEY_TYPE}" >&2; exit 1; fi; '
        'printf "%s %s\\n" "$kind" "$key"'
    )


def pinned_key_from_output(stdout: str) -> str:
    """The key to pin (`ssh-ed25519 <base64>`), from the read command's output."""
    return stdout.strip()


def learn_host_key(
    name: str,
    parent: pulumi.Resource,
    *,
    address: pulumi.Input[str],
    private_key: pulumi.Input[str],
    droplet_id: pulumi.Input[str],
    depends_on: Sequence[pulumi.Resource] = (),
) -> pulumi.Output[str]:
    """`<name>-host-key`: read a droplet's host key once (trust on first use); its output, kept
    in state, is the key every later connection to that droplet pins."""
    read = command.remote.Command(
        f"{name}-host-key",
        connection=deploy_ssh(address, private_key, host_key=None),
        create=read_host_key_command(),
        triggers=[droplet_id],
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
    return read.stdout.apply(pinned_key_from_output)


@dataclass(frozen=True)
class HostKeysArgs:
    """Droplets to learn keys of: short name -> (droplet id, SSH address)."""

    hosts: dict[str, tuple[pulumi.Input[str], pulumi.Input[str]]]
    private_key: pulumi.Input[str]
    # What SSH needs first: the firewall that lets the admin networks reach port 22.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class HostKeys(pulumi.ComponentResource):
    """The pinned host key of each app droplet, learned once per droplet (trust on first use).

    Attributes: `keys` (short name -> the key, `ssh-ed25519 AAAA...`).
    """

    keys: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: HostKeysArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "clipper:host:HostKeys", name, None, formerly("clipper:compute:HostKeys", opts)
        )
        self.keys = {
            host: learn_host_key(
                f"{name}-{host}", self, address=address, private_key=args.private_key,
                droplet_id=droplet_id, depends_on=args.depends_on,
            )
            for host, (droplet_id, address) in args.hosts.items()
        }  # fmt: skip
        self.register_outputs({"keys": self.keys})
