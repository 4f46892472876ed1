"""The monitoring host's and app hosts' monitoring files as the program declares them, and the
stack's settings, for the rendered-file tests."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from components.host.files import HostFile
from components.offline.render import host_files
from components.offline.runner import stack_config
from components.renderers.monitoring_units import ETC_DIR
from components.settings import PROJECT, Settings, parse_settings
from tests.support.program import stack_run

STACKS = ["staging", "production"]


@functools.cache
def stack_settings(stack: str) -> Settings:
    """The committed stack's settings, validated like the program does."""
    config, secret_keys = stack_config(stack)
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
    return parse_settings(stack, raw, {k[len(prefix) :] for k in secret_keys})


def role_files(stack: str, role: str) -> dict[str, HostFile]:
    """Every file the stack puts on hosts of `role`, by path (user-data and SSH bundles)."""
    return host_files(stack_run(stack))[role]


def monitoring_file(stack: str, relative: str) -> HostFile:
    """A file of the monitoring host under /etc/clipper-monitoring."""
    return role_files(stack, "monitoring")[f"{ETC_DIR}/{relative}"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run_tool(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A real checker, bounded in time; the caller asserts on its exit code and output."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
