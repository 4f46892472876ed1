"""Run a host's shell script (components/renderers/scripts/*.sh) with its rendered config beside
it, as on the host, and read a config the way the script does: sourced by real bash."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from components.host.files import HostFile
from components.host.layout import HOST_SETUP_CONFIG, HOST_SETUP_SCRIPT


def sourced(config: str, key: str) -> list[str]:
    """`key`'s value(s) after bash sources `config` (a scalar is a list of one)."""
    proc = subprocess.run(
        ["bash", "-c", 'set -eu; source /dev/stdin; declare -n v="$1"\n'
         'for item in "${v[@]}"; do printf "%s\\0" "$item"; done', "bash", key],
        input=config, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return proc.stdout.split("\0")[:-1]


def install_beside(script: HostFile, config: HostFile, folder: Path) -> Path:
    """The script and its config in `folder` under their host names; the script's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / Path(config.path).name).write_text(config.content)
    target = folder / Path(script.path).name
    target.write_text(script.content)
    target.chmod(0o755)
    return target


@dataclass(frozen=True)
class DryRun:
    """One run of a host script with every external command stubbed (see `dry_run`)."""

    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]  # the stubbed commands' argv, in order

    def lines(self, *prefix: str) -> list[str]:
        """The calls starting with `prefix`, each as one shell-quoted command line."""
        n = len(prefix)
        return [shlex.join(c) for c in self.calls if tuple(c[:n]) == prefix]


def dry_run(
    script: HostFile,
    config: HostFile,
    tmp_path: Path,
    *,
    failing: str = "",
    bash_env: str = "",
    siblings: tuple[str, ...] = (),
) -> DryRun:
    """Run `script` with `config` beside it under bash, where only `date`, `mv` and `dirname`
    are real.

    STAND-IN: every other command (ufw, systemctl, sshd, nginx, install, curl, ...) is bash's
    command_not_found_handle, which records its argv and succeeds: this machine is not the
    droplet. `failing` names one command replaced by a stub that fails ("bad config", 255);
    `bash_env` is more shell read first (more stand-ins, named by the caller). `siblings`:
    scripts the script calls from its own directory, each a STAND-IN that records its argv
    under its name (they are tested on their own)."""
    path = install_beside(script, config, tmp_path / "sbin")
    stubs, calls = tmp_path / "bin", tmp_path / "calls"
    for name in siblings:
        sibling = path.parent / name
        sibling.write_text(
            f"#!/bin/bash\nprintf '%s\\n' \"{name} ${{*@Q}}\" >> {shlex.quote(str(calls))}\n"
        )
        sibling.chmod(0o755)
    stubs.mkdir()
    for real in ("date", "mv", "dirname"):
        (stubs / real).symlink_to(f"/usr/bin/{real}" if real == "dirname" else f"/bin/{real}")
    if failing:
        (stubs / failing).write_text("#!/bin/sh\necho 'bad config' >&2\nexit 255\n")
        (stubs / failing).chmod(0o755)
    env_file = tmp_path / "bash_env"
    env_file.write_text(
        "command_not_found_handle() {\n"
        f"  printf '%s\\n' \"${{*@Q}}\" >> {shlex.quote(str(calls))}\n"
        "  printf 'stub: %s\\n' \"$*\" >&2\n"
        "}\n" + bash_env
    )
    proc = subprocess.run(
        ["/bin/bash", str(path)],
        env={"PATH": str(stubs), "BASH_ENV": str(env_file)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    recorded = calls.read_text().splitlines() if calls.exists() else []
    return DryRun(proc.returncode, proc.stdout, proc.stderr, [shlex.split(c) for c in recorded])


@dataclass(frozen=True)
class SetupRun(DryRun):
    """A dry run of the host setup script, and where its ready marker went."""

    ready: Path


def dry_run_setup(files: dict[str, HostFile], tmp_path: Path, *, failing: str = "") -> SetupRun:
    """A dry run (`dry_run`) of the setup script among a host's files (`files` by path: a
    role's user-data files) with its config.

    Two substitutions in the config: the ready marker goes under `tmp_path` (checked to hit),
    and role commands called by absolute path (the edge's helper scripts) are called by their
    bare name, so they reach the stand-in too."""
    ready = tmp_path / "host-ready"
    config = files[HOST_SETUP_CONFIG].content
    (marker,) = sourced(config, "READY_FILE")
    assert f"READY_FILE={marker}\n" in config
    config = config.replace(f"READY_FILE={marker}\n", f"READY_FILE={shlex.quote(str(ready))}\n")
    head, rest = config.split("ROLE_COMMANDS=(\n", 1)
    block, tail = rest.split("\n)\n", 1)
    block = re.sub(r"(?m)^(  '?)/\S*/", r"\1", block)
    config = f"{head}ROLE_COMMANDS=(\n{block}\n)\n{tail}"
    run = dry_run(
        files[HOST_SETUP_SCRIPT], HostFile(HOST_SETUP_CONFIG, config), tmp_path, failing=failing
    )
    return SetupRun(run.returncode, run.stdout, run.stderr, run.calls, ready)
