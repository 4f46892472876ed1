"""The deploy user's narrowed sudo and the file installer it runs (components/renderers/sudoers.py).

visudo checks the rendered file; every `sudo -n ...` the program's remote commands send (both
stacks, every host) must be one of its rules; the installer writes only allow-listed paths. On a
booted host, tests/host/test_first_boot.py checks the same rules with the real sudo.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.host import layout as host_layout
from components.host.remote_files import bundle
from components.renderers import sudoers
from tests.support.program import of_role, plain, stack_run

STACKS = ["staging", "production"]
_SUDO = re.compile(r"sudo -n ([^;&|\n]+)")
# What sudo's secure_path finds for a bare name on Ubuntu (sudoers rules name full paths).
_SECURE_PATH = {
    "env": "/usr/bin/env", "systemctl": "/usr/bin/systemctl",
    "clipper-release": "/usr/local/bin/clipper-release",
    "clipper-backup": "/usr/local/bin/clipper-backup",
}  # fmt: skip


def sudo_commands(stack: str) -> list[str]:
    """Every command line the program runs through `sudo -n` on any host of `stack`."""
    found = []
    for reg in stack_run(stack).of_type("command:remote:Command"):
        found += [
            re.sub(r"\s*\d*>.*$", "", m).strip()  # a redirection is the shell's, not sudo's
            for m in _SUDO.findall(str(plain(reg.inputs["create"])))
        ]
    return found


def permitted(command: str, postgres_major: str) -> bool:
    """Whether the rendered rules allow `command` (a sudo command line, as the deploy user
    types it). Mirrors sudoers' matching for the rule shapes the renderer writes."""
    argv = command.split()
    program = _SECURE_PATH.get(argv[0], argv[0])
    if program == sudoers.INSTALLER_PATH:
        return len(argv) == 1
    if program in ("/usr/local/bin/clipper-release", "/usr/local/bin/clipper-backup"):
        return True
    if re.fullmatch(r"/usr/local/sbin/clipper-[^/]*-activate", program):
        return len(argv) == 1
    exact = {
        c.replace("env ", "/usr/bin/env ", 1) if c.startswith("env ") else c
        for c in [*sudoers.backup_setup_commands(postgres_major), *sudoers.operator_commands()]
    }
    return " ".join([program, *argv[1:]]) in exact


@pytest.mark.parametrize("stack", STACKS)
def test_visudo_accepts_the_rendered_rules(stack: str, tmp_path: Path) -> None:
    doc = yaml.safe_load(
        plain(of_role(stack_run(stack), "digitalocean:index/droplet:Droplet")[0].inputs["userData"])
    )
    entry = next(f for f in doc["write_files"] if f["path"] == sudoers.SUDOERS_FILE)
    assert entry["permissions"] == "0440" and entry["owner"] == "root:root"
    path = tmp_path / "90-clipper-deploy"
    path.write_text(entry["content"])
    visudo = shutil.which("visudo") or "/usr/sbin/visudo"
    proc = subprocess.run(
        [visudo, "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ALL=(ALL)" not in entry["content"] and "NOPASSWD:ALL" not in entry["content"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_sudo_command_the_program_sends_is_allowed(stack: str) -> None:
    commands = sudo_commands(stack)
    assert any("clipper-release deploy" in c for c in commands)
    assert any(c == sudoers.INSTALLER_PATH for c in commands)
    refused = [c for c in commands if not permitted(c, "17")]
    assert refused == []


def test_a_root_shell_and_other_commands_are_not_allowed() -> None:
    for command in ("/bin/bash", "/usr/bin/python3 -I -c print(1)", "/usr/bin/cat /etc/shadow",
                    f"{sudoers.INSTALLER_PATH} --root /", "/usr/bin/systemctl stop ssh",
                    "env apt-get install -y netcat-openbsd"):  # fmt: skip
        assert not permitted(command, "17"), command


@pytest.mark.parametrize("stack", STACKS)
def test_the_installer_accepts_every_path_the_program_installs(stack: str) -> None:
    paths = set()
    for reg in stack_run(stack).of_type("command:remote:Command"):
        if plain(reg.inputs["create"]) == f"sudo -n {sudoers.INSTALLER_PATH}":
            paths |= {f["path"] for f in json.loads(plain(reg.inputs["stdin"]))["files"]}
    assert len(paths) > 20
    assert sorted(p for p in paths if not sudoers.installer_allows(p)) == []


@pytest.mark.parametrize(
    "path",
    ["/etc/sudoers.d/evil", "/etc/clipper/../shadow", "/root/.ssh/authorized_keys", "etc/clipper/x",
     "/usr/local/bin/nginx", sudoers.INSTALLER_PATH, "/etc/systemd/system/ssh.service",
     host_layout.HOST_SETUP_SCRIPT, host_layout.HOST_SETUP_CONFIG],
)  # fmt: skip
def test_the_installer_refuses_paths_outside_its_allowlist(path: str) -> None:
    assert not sudoers.installer_allows(path)


# ------------------------------------------------------------------------------ the script


def _install(root: Path, files: list[dict[str, str]]) -> subprocess.CompletedProcess[str]:
    script = root.parent / "clipper-install-files"
    script.write_text(sudoers.render_file_installer())
    return subprocess.run(
        [sys.executable, "-I", str(script), "--root", str(root)],
        input=bundle(files), capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_installer_writes_files_with_their_modes_and_reports_no_content(
    tmp_path: Path,
) -> None:
    root = tmp_path / "host"
    files = [
        {"path": "/etc/clipper/backend.env", "mode": "0600", "content": "DB_PASSWORD=hunter2\n"},
        {"path": "/usr/local/bin/clipper-tool", "mode": "0755", "content": "#!/bin/sh\necho\n"},
    ]
    first = _install(root, files)
    assert first.returncode == 0, first.stderr
    secret = root / "etc/clipper/backend.env"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "usr/local/bin/clipper-tool").stat().st_mode) == 0o755
    assert secret.read_text() == "DB_PASSWORD=hunter2\n"
    assert (secret.stat().st_uid, secret.stat().st_gid) == (0, 0)
    assert "hunter2" not in first.stdout + first.stderr
    assert "installed /etc/clipper/backend.env (mode 0600" in first.stdout
    again = _install(root, files)
    assert "unchanged /etc/clipper/backend.env" in again.stdout
    assert sorted(p.name for p in secret.parent.iterdir()) == ["backend.env"]


def test_the_installer_changes_nothing_when_one_file_cannot_be_written(tmp_path: Path) -> None:
    root = tmp_path / "host"
    (root / "etc/clipper").mkdir(parents=True)
    (root / "etc/clipper/a.env").write_text("OLD=1\n")
    (root / "etc/clipper/not-a-dir").write_text("a file where a directory should be")
    result = _install(root, [
        {"path": "/etc/clipper/a.env", "mode": "0600", "content": "NEW=1\n"},
        {"path": "/etc/clipper/not-a-dir/b.env", "mode": "0600", "content": "X=1\n"},
    ])  # fmt: skip
    assert result.returncode != 0
    assert (root / "etc/clipper/a.env").read_text() == "OLD=1\n"
    assert sorted(p.name for p in (root / "etc/clipper").iterdir()) == ["a.env", "not-a-dir"]


def test_the_installer_refuses_the_whole_bundle_if_one_path_is_not_allowed(tmp_path: Path) -> None:
    root = tmp_path / "host"
    result = _install(root, [
        {"path": "/etc/clipper/a.env", "mode": "0600", "content": "A=1\n"},
        {"path": "/etc/sudoers.d/evil", "mode": "0440", "content": "deploy ALL=(ALL) ALL\n"},
    ])  # fmt: skip
    assert result.returncode != 0
    assert "refusing paths outside the allowlist: /etc/sudoers.d/evil" in result.stderr
    assert not root.exists()
