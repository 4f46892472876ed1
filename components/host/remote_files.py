"""Files written on a host over SSH: one remote command installs a whole bundle atomically.

The bundle (JSON: `{"files": [{"path", "mode", "content"}]}`) travels on the command's stdin,
never on its command line, so secret files (the env files) stay out of process lists, shell
history, sudo logs and the provider's error messages (which quote the command). The command line
is a fixed installer (components/renderers/sudoers.py; cloud-init puts it on the host): it
stages every file as a temp file in its target directory (mode set before any byte is written,
owner root), and only when all are staged renames each over its target; it refuses paths
outside its allowlist. A failure leaves every old file in place; re-running it is harmless. It
prints one line per file (path, mode, size, changed or not), never the content.

The component's registered inputs are exactly `{"role", "files"}`: the offline `render` command
reads them to write every host file (components/offline/render.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command

from components.host import layout as host_layout
from components.host.files import HostFile
from components.renderers.sudoers import INSTALLER_PATH

HOSTSCRIPTS_DIR = Path(__file__).resolve().parents[2] / "hostscripts"  # from the repo root


def host_package_files() -> list[HostFile]:
    """The `clipper` host package (hostscripts/clipper/**.py) at HOST_PACKAGE_DIR/clipper/, where
    the launchers /usr/local/bin/clipper-release and clipper-backup import it from."""
    root = HOSTSCRIPTS_DIR / "clipper"
    return [
        HostFile(
            f"{host_layout.HOST_PACKAGE_DIR}/clipper/{path.relative_to(root).as_posix()}",
            path.read_text(),
        )
        for path in sorted(root.rglob("*.py"))
    ]


def install_command() -> str:
    """The fixed command line that installs a bundle read from stdin (no data in it): the
    root-owned installer cloud-init put on the host, the one file writer sudo allows."""
    return f"sudo -n {INSTALLER_PATH}"


def bundle(files: Sequence[dict[str, str]]) -> str:
    """The installer's stdin for `files` (each a dict with path, mode and content)."""
    return json.dumps({"files": list(files)}, sort_keys=True)


@dataclass(frozen=True)
class RemoteFile:
    """One root-owned file for a host; its content may be a (secret) Output."""

    path: str
    content: pulumi.Input[str]
    mode: str = "0644"

    def __post_init__(self) -> None:
        HostFile(self.path, "", self.mode)  # the same path and mode rules as every host file


@dataclass(frozen=True)
class RemoteFilesArgs:
    """Which host, as whom, and which files. `secret` keeps the bundle secret in state."""

    role: str
    files: Sequence[RemoteFile]
    connection: command.remote.ConnectionArgs
    # Re-install when any of these change (for example the droplet's id: a new droplet).
    triggers: Sequence[pulumi.Input[Any]] = field(default_factory=tuple)
    secret: bool = False
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class RemoteFiles(pulumi.ComponentResource):
    """Files installed on one host over SSH by one remote command, atomically.

    A change of any file's content or mode changes the command's stdin, which re-runs it.
    `stdout` lists what was installed or left unchanged.
    """

    stdout: pulumi.Output[str]

    def __init__(
        self, name: str, args: RemoteFilesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        entries: list[dict[str, pulumi.Input[str]]] = []
        for remote_file in args.files:
            content: pulumi.Input[str] = (
                pulumi.Output.secret(remote_file.content) if args.secret else remote_file.content
            )
            entries.append({"path": remote_file.path, "mode": remote_file.mode, "content": content})
        super().__init__(
            "clipper:host:RemoteFiles", name, {"role": args.role, "files": entries}, opts
        )
        files = list(args.files)
        stdin: pulumi.Output[str] = pulumi.Output.all(*(f.content for f in files)).apply(
            lambda texts: bundle(
                [
                    {"path": f.path, "mode": f.mode, "content": str(text)}
                    for f, text in zip(files, texts, strict=True)
                ]
            )
        )
        if args.secret:
            stdin = pulumi.Output.secret(stdin)
        install = command.remote.Command(
            f"{name}-install",
            connection=args.connection,
            create=install_command(),
            stdin=stdin,
            triggers=list(args.triggers) or None,
            # The previous stdout is not worth sending back to the host.
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.depends_on),
                additional_secret_outputs=["stdin"] if args.secret else None,
            ),
        )
        self.stdout = install.stdout
        self.register_outputs({"stdout": self.stdout})
