"""The one place a host command starts a process: argv lists only (never a shell), output
captured, and a failure raised as HostError naming the step and quoting the tool's output."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from .errors import HostError

TAIL_LINES = 15


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = 600,
    check: bool = True,
    what: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv`; with `check`, a non-zero exit raises HostError with the output's tail.
    Secrets travel in `env` or `input`, never in argv."""
    step = what or " ".join(argv[:3])
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise HostError(f"{step}: {argv[0]} is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise HostError(f"{step} took longer than {timeout}s") from None
    if check and proc.returncode != 0:
        raise HostError(
            f"{step} failed (exit {proc.returncode}):\n{tail(proc.stdout + proc.stderr)}"
        )
    return proc
