"""Files placed on hosts, and how the program says which host role gets them.

Two ways a file reaches a host, both visible to the offline `render` command:
- cloud-init `write_files` in a droplet's user-data (no secrets, ever);
- a `clipper:host:RemoteFiles` component (components/host/remote_files.py) that writes files over
  SSH; its registered inputs are `{"role": str, "files": [{"path", "mode", "content"}]}`.

A droplet's role comes from its tag `clipper-<environment>-<role>`, which the firewalls use too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROLES: tuple[str, ...] = ("app", "monitoring")
_ROLE_TAG = re.compile(r"^clipper-(?P<environment>[a-z0-9]+)-(?P<role>[a-z]+)$")


@dataclass(frozen=True)
class HostFile:
    """One file for a host: absolute path, text, octal mode and owner."""

    path: str
    content: str
    mode: str = "0644"
    owner: str = "root:root"

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"host file path must be absolute and plain: {self.path!r}")
        if not re.fullmatch(r"0[0-7]{3}", self.mode):
            raise ValueError(f"host file mode must be octal like 0644: {self.mode!r}")


def role_tag(environment: str, role: str) -> str:
    """The DigitalOcean tag of every droplet of `role` in `environment` (tags are account-wide)."""
    if role not in ROLES:
        raise ValueError(f"unknown host role {role!r}; roles: {', '.join(ROLES)}")
    return f"clipper-{environment}-{role}"


def role_of(tags: list[str] | tuple[str, ...]) -> str | None:
    """The host role named by a droplet's tags, if any."""
    for tag in tags:
        match = _ROLE_TAG.match(tag)
        if match and match["role"] in ROLES:
            return match["role"]
    return None
