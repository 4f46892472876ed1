"""SSH host-key pinning over real SSH: the key learned on first use connects, a changed key is
refused before any command runs.

Stand-in, named here: pulumi-command's SSH client (Go, `ssh.FixedHostKey(key)` with
`HostKeyAlgorithms = [key.Type()]`, provider/pkg/provider/remote/connection.go) is not runnable
without its plugin, so the pinned connection is OpenSSH's client given exactly that: the one
pinned key as its only known host key (`StrictHostKeyChecking=yes`) and only that key's
algorithm. The learning step runs the program's own read command over an unpinned connection,
as `<host>-host-key` does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.host.keys import pinned_key_from_output, read_host_key_command
from tests.support.services import SshHost


def _learn(host: SshHost) -> str:
    """Trust on first use: the program's read command, over an unpinned connection."""
    key_file = host.dir / "ssh_host_ed25519_key.pub" if host.dir else Path("/nonexistent")
    return pinned_key_from_output(host.ssh(read_host_key_command(str(key_file))).stdout)


def _pinned_ssh(
    host: SshHost, pinned: str, known_hosts: Path, command: str
) -> subprocess.CompletedProcess[str]:
    known_hosts.write_text(f"[{host.host}]:{host.port} {pinned}\n")
    unpinned = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null")
    args: list[str] = []
    for arg in host.client_args():
        if arg in unpinned:
            args.pop()  # its "-o"
        else:
            args.append(arg)
    args[-1:-1] = [
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", f"HostKeyAlgorithms={pinned.split(maxsplit=1)[0]}",
        "-o", "LogLevel=ERROR",
    ]  # fmt: skip
    return subprocess.run([*args, command], capture_output=True, text=True, timeout=60, check=False)


def test_the_learned_key_is_the_hosts_and_connects(ssh_host: SshHost, tmp_path: Path) -> None:
    pinned = _learn(ssh_host)
    assert pinned == " ".join(ssh_host.host_public_key.split()[:2])
    assert pinned.startswith("ssh-ed25519 AAAA") and "\n" not in pinned
    result = _pinned_ssh(ssh_host, pinned, tmp_path / "known_hosts", "echo pinned-ok")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pinned-ok"


def test_a_changed_host_key_is_refused_before_any_command_runs(tmp_path: Path) -> None:
    with SshHost() as first:
        pinned = _learn(first)
        port = first.port
        assert _pinned_ssh(first, pinned, tmp_path / "known_hosts", "true").returncode == 0
    # The same address and port, a new host key: a rebuilt droplet, or someone in between.
    marker = tmp_path / "ran"
    with SshHost(port=port) as impostor:
        assert _learn(impostor) != pinned
        result = _pinned_ssh(impostor, pinned, tmp_path / "known_hosts", f"touch {marker}")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr
    assert not marker.exists()


def test_the_read_command_refuses_a_key_of_another_type(tmp_path: Path) -> None:
    rsa = tmp_path / "ssh_host_rsa_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-N", "", "-f", str(rsa)], check=True)
    proc = subprocess.run(
        ["sh", "-c", read_host_key_command(f"{rsa}.pub")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "holds a ssh-rsa key, not ssh-ed25519" in proc.stderr


@pytest.mark.parametrize("output", ["ssh-ed25519 AAAAC3Nza\n", "  ssh-ed25519 AAAAC3Nza  \n"])
def test_the_pinned_key_is_the_output_without_whitespace(output: str) -> None:
    assert pinned_key_from_output(output) == "ssh-ed25519 AAAAC3Nza"
