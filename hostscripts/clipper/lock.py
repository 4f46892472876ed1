"""One lock per host, shared by deploy, rollback, migrate-force, backup, restore and drill
(design.md: a migration must never run while pg_dump holds its locks, and two of them never
run at once).

It is a `flock` on `<state dir>/host.lock`: the kernel releases it when the holder dies, so a
killed run never leaves the host locked (Kamal's `mkdir` lock needs a manual release). The
holder file next to it says who holds it, so a refusal can name the other run.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .clock import iso, now_utc, parse_iso
from .errors import LockHeldError
from .files import atomic_write, read_json_object

LOCK_NAME = "host.lock"
HOLDER_NAME = "host.lock.holder"


def holder_path(state_dir: Path) -> Path:
    return state_dir / HOLDER_NAME


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def holder_kind(command: str) -> str:
    """ "deploy", "rollback", "backup", "drill", ... from the holder's command line."""
    words = command.split()
    return words[1] if len(words) > 1 else "run"


def describe_holder(holder: Mapping[str, Any] | None) -> str:
    """Who holds the lock, doing what, since when (for a refusal and for `status`)."""
    if not holder:
        return "another run holds the lock on this host (it is just starting); try again shortly"
    since = str(holder.get("started_at", "?"))
    command = str(holder.get("command", "?"))
    age = ""
    with contextlib.suppress(ValueError):
        age = f" ({int((now_utc() - parse_iso(since)).total_seconds())}s ago)"
    return (
        f"another {holder_kind(command)} is running on {holder.get('host', '?')}: '{command}'"
        f" by {holder.get('user', '?')}, pid {holder.get('pid', '?')}, since {since}{age}."
        " It holds this host's lock (deploy, rollback, backup and drill share it): this run was"
        " refused, nothing changed. Try again when it is done (clipper-release status shows it)."
    )


@contextlib.contextmanager
def host_lock(state_dir: Path, command: str) -> Iterator[Path]:
    """Hold the host lock for the block, or refuse at once (LockHeldError names the holder)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = state_dir / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockHeldError(describe_holder(read_json_object(holder_path(state_dir)))) from None
    holder = {
        "user": os.environ.get("SUDO_USER") or _user_name(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started_at": iso(now_utc()),
    }
    try:
        atomic_write(holder_path(state_dir), json.dumps(holder) + "\n")
        yield lock_path
    finally:
        with contextlib.suppress(OSError):
            holder_path(state_dir).unlink()
        os.close(fd)


def pid_alive(pid: Any) -> bool:
    """Whether `pid` names a live process (a holder file left by a killed run does not)."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
