"""The shell scripts Clipper puts on its hosts, and the small config files that feed them.

Each script is a static file, components/renderers/scripts/<name>.sh: the same text for every
stack and role, so it is read, linted (shellcheck, in scripts/test.sh) and diffed as itself.
What a stack decides (its domain, firewall rules, units, paths) is in a config file of
shell-quoted KEY=value lines that the same mechanism writes beside the script on the host
(cloud-init's write_files or a RemoteFiles bundle), and that the script sources from its own
directory: under a test's root the script finds the test's config.
"""

from __future__ import annotations

import functools
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"

ConfigValue = str | int | Sequence[str]

_KEY = re.compile(r"[A-Z][A-Z0-9_]*")


@functools.cache
def script_text(name: str) -> str:
    """The text of scripts/<name>.sh, as it is installed on a host."""
    return (SCRIPTS_DIR / f"{name}.sh").read_text()


def config_beside(script_path: str, file_name: str) -> str:
    """The host path of a script's config file: `file_name` in the script's directory."""
    return posixpath.join(posixpath.dirname(script_path), file_name)


def render_script_config(header: str, values: Mapping[str, ConfigValue]) -> str:
    """A config file for `source`: `# header`, then one `KEY=value` line per value (a list
    becomes a bash array, one element a line), every value shell-quoted."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for key, value in values.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"a script config key must be an upper-case shell name: {key!r}")
        if isinstance(value, str | int):
            lines.append(f"{key}={shlex.quote(str(value))}")
        else:
            if any("\n" in item for item in value):
                raise ValueError(f"{key}: one line per element: {value!r}")
            lines += [f"{key}=(", *(f"  {shlex.quote(item)}" for item in value), ")"]
    return "\n".join(lines) + "\n"
