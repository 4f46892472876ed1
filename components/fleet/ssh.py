"""The one thin runner: the system `ssh` client, as the deploy user, with the stack's key.

The private key is written to a 0600 file in a 0700 temp dir for the command's lifetime and
passed as `-i PATH`: never on a command line, in the environment or in an agent. Host keys are
pinned when the stack outputs carry them (a temp known_hosts, `StrictHostKeyChecking=yes`);
otherwise the operator's known_hosts is trusted on first use (`accept-new`), never ignored.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from components.fleet.outputs import Fleet, FleetHost
from components.host import layout as host_layout

CONNECT_TIMEOUT_SECONDS = 10
# Every session: never prompt, only our key, no agent, bounded connect, dead peers noticed.
BASE_OPTIONS: tuple[str, ...] = (
    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
    "-o", f"ConnectTimeout={CONNECT_TIMEOUT_SECONDS}", "-o", "ServerAliveInterval=15",
    "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR",
)  # fmt: skip


@dataclass(frozen=True)
class SshAccess:
    """Files the ssh client reads: the key, the pinned host keys (if any), an ssh_config."""

    key_file: Path
    known_hosts: Path | None = None
    config_file: Path | None = None


def known_hosts_text(hosts: Sequence[FleetHost]) -> str:
    """known_hosts lines keyed by host name (ssh looks them up through `HostKeyAlias`)."""
    return "".join(f"{host.name} {host.host_key}\n" for host in hosts if host.host_key)


def ssh_argv(access: SshAccess, host: FleetHost, remote: Sequence[str]) -> list[str]:
    """The ssh command line that runs `remote` (quoted for the remote shell) on `host`."""
    argv = ["ssh"]
    if access.config_file is not None:
        argv += ["-F", str(access.config_file)]
    argv += ["-i", str(access.key_file), *BASE_OPTIONS]
    if host.host_key and access.known_hosts is not None:
        argv += [
            "-o", f"UserKnownHostsFile={access.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", f"HostKeyAlias={host.name}",
        ]  # fmt: skip
    else:
        argv += ["-o", "StrictHostKeyChecking=accept-new"]
    return [*argv, "--", f"{host_layout.DEPLOY_USER}@{host.address}", shlex.join(remote)]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")  # ssh wants the newline


@contextlib.contextmanager
def ssh_access(fleet: Fleet, config_file: Path | None = None) -> Iterator[SshAccess]:
    """The key (and pinned host keys) in a private temp dir, removed when the block ends."""
    tmp = Path(tempfile.mkdtemp(prefix="clipper-ops-"))  # mode 0700
    try:
        key = tmp / "deploy_key"
        _write_private(key, fleet.private_key)
        pinned = known_hosts_text(fleet.hosts)
        known = None
        if pinned:
            known = tmp / "known_hosts"
            _write_private(known, pinned)
        yield SshAccess(key, known, config_file)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Line:
    """One output line of a host, when it arrived (monotonic seconds) and on which stream."""

    at: float
    stream: str
    text: str


@dataclass
class HostRun:
    """What one remote command did: its exit code and every line, timestamped on arrival."""

    host: str
    returncode: int
    lines: list[Line] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return "".join(f"{line.text}\n" for line in self.lines if line.stream == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(f"{line.text}\n" for line in self.lines if line.stream == "stderr")


OnLine = Callable[[str, Line], None]


class SshRunner:
    """Runs remote argvs on fleet hosts; `on_line` sees each line as it arrives (live output)."""

    def __init__(self, access: SshAccess) -> None:
        self.access = access
        self._live: set[subprocess.Popen[str]] = set()
        self._guard = threading.Lock()

    def stop(self) -> None:
        """End every session still running (`logs --follow` on Ctrl-C)."""
        with self._guard:
            for proc in self._live:
                proc.terminate()

    def run(
        self,
        host: FleetHost,
        remote: Sequence[str],
        on_line: OnLine | None = None,
        timeout: float | None = 600.0,
    ) -> HostRun:
        argv = ssh_argv(self.access, host, remote)
        result = HostRun(host.name, 0)
        guard = threading.Lock()

        def pump(stream: IO[str], name: str) -> None:
            for raw in stream:
                line = Line(time.monotonic(), name, raw.rstrip("\n"))
                with guard:
                    result.lines.append(line)
                    if on_line is not None:
                        on_line(host.name, line)

        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, errors="replace",
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        with self._guard:
            self._live.add(proc)
        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, "stderr"), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        try:
            result.returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            result.returncode = proc.wait()
            result.lines.append(
                Line(time.monotonic(), "stderr", f"ops: no answer from {host.name} in {timeout}s")
            )
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=10)
            raise
        for thread in pumps:
            thread.join(timeout=5)
        with self._guard:
            self._live.discard(proc)
        return result
