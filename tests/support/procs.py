"""Process and error plumbing shared by the service helpers.

Every helper starts a real daemon; when one of its steps fails the test author needs to know
*which* step and what the daemon said, so failures are raised as :class:`ServiceError` carrying
the tail of the service's log.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "ManagedService",
    "ServiceError",
    "children_of",
    "free_port",
    "log_tail",
    "pid_alive",
    "read_pid",
    "require_binary",
    "run_step",
    "safe_rmtree",
    "stop_pid",
    "unmount_under",
    "wait_for_port",
    "wait_until",
]

_HANDED_OUT: set[int] = set()


class ManagedService:
    """Context-manager plumbing for every test service: `with` starts it, and always stops it,
    also when starting failed half way (so a failed start leaves no daemon behind)."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServiceError(RuntimeError):
    """A step of starting, using or stopping a test service failed.

    The message names the service and the step and ends with the service's log tail, so a CI
    failure can be read without rerunning anything.
    """

    def __init__(self, service: str, step: str, detail: str, log: Path | None = None) -> None:
        self.service = service
        self.step = step
        self.detail = detail.strip()
        self.log = log
        message = f"{service}: step {step!r} failed: {self.detail}"
        if log is not None:
            message += f"\n--- tail of {log} ---\n{log_tail(log)}"
        super().__init__(message)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and not handed out before by this process.

    The kernel picks it (bind to port 0), so parallel test processes rarely collide; the
    remaining race (someone binds it before the service does) is handled by the helpers retrying
    with a new port when they chose the port themselves.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("free_port: the kernel kept returning ports handed out before")


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file (or a note why there are none)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    tail = data.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def require_binary(service: str, name: str) -> str:
    """Resolve a binary or fail with a hint to run the install script."""
    found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
    if not found:
        raise ServiceError(
            service,
            "find binary",
            f"{name} not found; run scripts/install-test-deps.sh to install the test packages",
        )
    return found


def run_step(
    service: str,
    step: str,
    args: Sequence[str],
    *,
    log: Path | None = None,
    timeout: float = 120.0,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run one command of a service's life cycle; on failure raise a ServiceError naming ``step``.

    ``user`` switches to that OS user (only when we are root): PostgreSQL refuses to run as root.
    """
    try:
        proc = subprocess.run(
            list(args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            user=user if user is not None and os.geteuid() == 0 else None,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(service, step, f"{args[0]} timed out after {timeout}s", log) from exc
    except OSError as exc:
        raise ServiceError(service, step, f"cannot run {args[0]}: {exc}", log) from exc
    if check and proc.returncode != 0:
        detail = f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        raise ServiceError(service, step, detail, log)
    return proc


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    abort: Callable[[], str | None] | None = None,
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return whether it became true.

    ``abort`` is checked on every round and stops the wait early (e.g. when the daemon died);
    it returns a reason or None.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if abort is not None and abort() is not None:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """Wait until a TCP connect to host:port succeeds."""

    def connects() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            return False

    return wait_until(connects, timeout=timeout)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name (which may contain spaces).
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pid(path: Path) -> int | None:
    """Read a daemon's pid file; None if it is missing or garbled."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc), e.g. nginx workers of a master."""
    result: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if len(fields) > 1 and int(fields[1]) == pid and fields[0] != "Z":
            result.append(int(entry.name))
    return result


def stop_pid(pid: int, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> bool:
    """Send ``sig`` to ``pid``, wait for it to exit, SIGKILL after ``timeout``.

    Returns True when the process had to be killed. Reaps it when it is our child.
    """

    def gone() -> bool:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return True
        except ChildProcessError:
            pass
        return not pid_alive(pid)

    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    if wait_until(gone, timeout=timeout):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    wait_until(gone, timeout=5.0)
    return True


def unmount_under(path: Path) -> None:
    """Unmount every mount point at or below ``path`` (deepest first).

    Needed before deleting a debootstrap root or a Docker exec root: deleting through a still
    mounted /proc, /sys or bind-mounted /dev would be harmful.
    """
    root = os.path.realpath(path)
    points: list[str] = []
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        if point == root or point.startswith(root + "/"):
            points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def safe_rmtree(path: Path) -> None:
    """Delete a temp tree, first unmounting anything mounted inside it."""
    if not path.exists():
        return
    unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)
