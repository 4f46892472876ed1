"""The one sequence that sets up a host over SSH: wait for it, install its files, activate them.

Every component with work on a host (the release, monitoring, backups) declares it through
`set_up_host`, each step a pulumi-command remote command as the deploy user:

1. `<prefix>-ready` (unless the host is known ready): wait for cloud-init, then require the
   host-ready marker it writes last; it waits for `reachable_after` (the firewall that lets SSH
   in);
2. one RemoteFiles bundle per `Bundle` (`<prefix>-<suffix>`, components/host/remote_files.py: the
   files travel on stdin, a secret bundle as a secret), after the wait and `install_after`;
3. the `Activation` (`<prefix>-<suffix>`): one fixed command line, after the bundles and all
   they waited for, and its own `after`. It runs again when one of its triggers changes.

The wait and the bundles run again on a new droplet (its id is their trigger). No command line
carries data: the wait and the installer are fixed, and the activation's command must be a
plain string (a secret is an Output, so it cannot end up there), so secrets stay out of process
lists, logs and the provider's error messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_command as command

from components.host import layout as host_layout
from components.host.remote_files import RemoteFile, RemoteFiles, RemoteFilesArgs


def wait_for_host_command() -> str:
    """Wait for cloud-init, then require the marker it writes when the host is ready."""
    ready = host_layout.HOST_READY_FILE
    return (
        "set -u; rc=0; cloud-init status --wait >/dev/null 2>&1 || rc=$?; "
        f'if [ -f {ready} ]; then echo "host ready (cloud-init status exit $rc)"; '
        f'else echo "cloud-init finished (exit $rc) but {ready} is missing:'
        ' see /var/log/cloud-init-output.log" >&2; exit 1; fi'
    )


@dataclass(frozen=True)
class Bundle:
    """Files for the host, installed by one command (`<prefix>-<suffix>`); `secret` keeps the
    contents secret in state and on the wire."""

    suffix: str
    role: str  # the host role the offline render files them under (components/host/files.py)
    files: Sequence[RemoteFile]
    secret: bool = False


@dataclass(frozen=True)
class Activation:
    """The command that puts the installed files to work (`<prefix>-<suffix>`), re-run when one
    of `triggers` changes. `after`: what it needs besides the host's own setup."""

    suffix: str
    command: str
    triggers: Sequence[pulumi.Input[Any]]
    after: Sequence[pulumi.Resource] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # A command line is logged and quoted in errors: only fixed text, never an Output.
        if not isinstance(self.command, str):
            raise TypeError(f"{self.suffix}: the activation command must be a plain string")


@dataclass(frozen=True)
class HostSetup:
    """What `set_up_host` declared: depend on `activation` to wait until the host is set up."""

    ready: command.remote.Command | None
    bundles: dict[str, RemoteFiles]  # by suffix
    activation: command.remote.Command


def set_up_host(
    prefix: str,
    *,
    parent: pulumi.Resource,
    connection: command.remote.ConnectionArgs,
    droplet_id: pulumi.Input[str],
    bundles: Sequence[Bundle],
    activation: Activation,
    wait_for_host: bool = True,
    reachable_after: Sequence[pulumi.Resource] = (),
    install_after: Sequence[pulumi.Resource] = (),
) -> HostSetup:
    """Declare the host's setup, every resource a child of `parent` (see the module's doc).

    `wait_for_host=False` when another setup of the same host already waited and is in
    `install_after`. `install_after`: what must be done before anything on this host changes
    (the previous host's deploy in a one-at-a-time roll)."""
    host = _Host(prefix, parent, connection, droplet_id)
    ready = host.wait(after=reachable_after) if wait_for_host else None
    before_files = ([ready] if ready is not None else []) + list(install_after)
    installed = {bundle.suffix: host.install(bundle, after=before_files) for bundle in bundles}
    activate = host.run(activation, after=[*installed.values(), *before_files, *activation.after])
    return HostSetup(ready=ready, bundles=installed, activation=activate)


@dataclass(frozen=True)
class _Host:
    """What every step of one host's setup shares: names, parent, connection, droplet."""

    prefix: str
    parent: pulumi.Resource
    connection: command.remote.ConnectionArgs
    droplet_id: pulumi.Input[str]

    def wait(self, *, after: Sequence[pulumi.Resource]) -> command.remote.Command:
        return command.remote.Command(
            f"{self.prefix}-ready",
            connection=self.connection,
            create=wait_for_host_command(),
            triggers=[self.droplet_id],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self.parent, depends_on=list(after)),
        )

    def install(self, bundle: Bundle, *, after: Sequence[pulumi.Resource]) -> RemoteFiles:
        return RemoteFiles(
            f"{self.prefix}-{bundle.suffix}",
            RemoteFilesArgs(
                role=bundle.role,
                files=bundle.files,
                connection=self.connection,
                triggers=[self.droplet_id],
                secret=bundle.secret,
                depends_on=after,
            ),
            opts=pulumi.ResourceOptions(parent=self.parent),
        )

    def run(
        self, activation: Activation, *, after: Sequence[pulumi.Resource]
    ) -> command.remote.Command:
        return command.remote.Command(
            f"{self.prefix}-{activation.suffix}",
            connection=self.connection,
            create=activation.command,
            triggers=list(activation.triggers),
            # The previous stdout is not worth sending back to the host.
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self.parent, depends_on=list(after)),
        )
