"""Run a rendered stunnel configuration under the real Debian `stunnel4` on loopback.

stunnel has no "check the config" flag: it is checked by starting it. `StunnelProcess` starts it
in the foreground (as the rendered config asks), waits until it says "Configuration successful"
and its port accepts connections, and always stops it by its own PID.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .procs import ManagedService, ServiceError, require_binary, stop_pid, wait_for_port

__all__ = ["StunnelProcess"]


class StunnelProcess(ManagedService):
    """`stunnel4 CONFIG` as a child process; `log` holds its output once stopped."""

    def __init__(self, config: Path, listen_port: int, *, timeout: float = 10.0) -> None:
        self.config = config
        self.listen_port = listen_port
        self.timeout = timeout
        self.log_file = config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = require_binary("stunnel", "stunnel4")
        with self.log_file.open("wb") as log:
            self.proc = subprocess.Popen([binary, str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError("stunnel", "start", f"exited with {self.proc.returncode}",
                                   self.log_file)  # fmt: skip
            if "Configuration successful" in self.log and wait_for_port(
                "127.0.0.1", self.listen_port, timeout=0.5
            ):
                return
            time.sleep(0.05)
        raise ServiceError("stunnel", "start", "not listening in time", self.log_file)

    @property
    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_pid(self.proc.pid, timeout=5.0)
        self.proc = None
