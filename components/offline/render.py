"""`render`: every file a stack puts on a host, written to `DIR/<role>/<absolute path>`.

Read from what the program declared, so it cannot drift from a deployment: the `write_files`
of each droplet's cloud-init user-data (and the user-data itself), and the files of each
`clipper:host:RemoteFiles` component (delivered over SSH by pulumi-command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime import rpc

from components.host.files import HostFile, role_of
from components.offline.runner import ProgramRun

DROPLET = "digitalocean:index/droplet:Droplet"
REMOTE_FILES = "clipper:host:RemoteFiles"
USER_DATA_PATH = "/var/lib/cloud/instance/user-data.txt"


def _plain(value: Any) -> Any:
    while rpc.is_rpc_secret(value):
        value = rpc.unwrap_rpc_secret(value)
    return value


def files_from_user_data(user_data: str) -> list[HostFile]:
    """The user-data itself and each of its `write_files` entries."""
    files = [HostFile(USER_DATA_PATH, user_data, "0600")]
    document = yaml.safe_load(user_data) or {}
    for entry in document.get("write_files") or []:
        files.append(
            HostFile(
                path=entry["path"],
                content=entry.get("content", ""),
                mode=str(entry.get("permissions", "0644")),
                owner=entry.get("owner", "root:root"),
            )
        )
    return files


def host_files(run: ProgramRun) -> dict[str, dict[str, HostFile]]:
    """Files per role, keyed by path. Two hosts of one role must agree on each file."""
    by_role: dict[str, dict[str, HostFile]] = {}

    def add(role: str, file: HostFile, source: str) -> None:
        existing = by_role.setdefault(role, {}).get(file.path)
        if existing is not None and existing != file and file.path != USER_DATA_PATH:
            raise ValueError(f"{source}: {role} hosts disagree about {file.path}")
        by_role[role].setdefault(file.path, file)

    for reg in run.of_type(DROPLET):
        role = role_of(list(_plain(reg.inputs.get("tags")) or []))
        user_data = _plain(reg.inputs.get("userData"))
        if role and isinstance(user_data, str):
            for file in files_from_user_data(user_data):
                add(role, file, reg.name)
    for reg in run.of_type(REMOTE_FILES):
        role = str(_plain(reg.inputs.get("role")))
        for raw in _plain(reg.inputs.get("files")) or []:
            entry = {k: _plain(v) for k, v in _plain(raw).items()}
            add(
                role, HostFile(entry["path"], entry["content"], entry.get("mode", "0644")), reg.name
            )
    return by_role


def write_host_files(run: ProgramRun, out_dir: Path) -> list[Path]:
    """Write each file under `out_dir/<role>/<path>` with its mode; return the paths written."""
    written = []
    for role, files in sorted(host_files(run).items()):
        for path, file in sorted(files.items()):
            target = out_dir / role / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file.content)
            target.chmod(int(file.mode, 8))
            written.append(target)
    return written
