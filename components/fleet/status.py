"""What the fleet looks like, decided from each host's `clipper-release status --json`.

Pure: parse each host's answer, render one table (or JSON), and say what is wrong with the
fleet as a whole: a host unreachable or unhealthy, more than one release live, a lock held, or
(with the shipped images at hand) a host serving something other than what `pulumi up` shipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# ssh's own exit code when it could not connect or authenticate.
SSH_FAILED = 255
SHIPPED_ROLES = ("backend", "frontend", "migrations")


@dataclass(frozen=True)
class HostStatus:
    """One host as the fleet command reports it."""

    host: str
    reachable: bool
    error: str | None = None
    active_color: str | None = None
    active_release: str | None = None
    healthy: bool = False
    images: Mapping[str, str] = field(default_factory=dict)  # the live release's images
    lock: Mapping[str, Any] | None = None
    releases: tuple[str, ...] = ()  # newest first, as the host records them
    previous_release: str | None = None  # what a plain `rollback` on the host goes back to
    containers: Mapping[str, str] = field(default_factory=dict)  # role -> live container name
    last_backup: str | None = None
    backup_error: str | None = None


def previous_of(releases_newest_first: Sequence[str], active: str | None) -> str | None:
    """The release recorded just before the active one: the host script's `rollback_target`."""
    oldest_first = list(reversed(releases_newest_first))
    if active not in oldest_first:
        return oldest_first[-1] if oldest_first else None
    index = oldest_first.index(active)
    return oldest_first[index - 1] if index > 0 else None


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " / ".join(kept) or "no output"


def parse_host_status(
    host: str, returncode: int, stdout: str, stderr: str, backup: tuple[int, str, str] | None
) -> HostStatus:
    """A host's status from its command's exit code and output (status exits 1 when the host
    is unhealthy but still prints its JSON); `backup` is `clipper-backup list --json`'s."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        why = "ssh failed" if returncode == SSH_FAILED else f"status exited {returncode}"
        return HostStatus(host, reachable=False, error=f"{why}: {_tail(stderr or stdout)}")
    active, color = doc.get("active_release"), doc.get("active_color")
    records = [r for r in doc.get("releases") or [] if isinstance(r, dict) and "id" in r]
    ids = tuple(str(r["id"]) for r in records)
    live = next((r for r in records if r["id"] == active), {})
    colors = doc.get("colors") or {}
    live_containers = (colors.get(color) or {}).get("containers") or {} if color else {}
    last_backup = backup_error = None
    if backup is not None:
        code, out, err = backup
        try:
            rows = json.loads(out) if code == 0 else None
        except ValueError:
            rows = None
        if isinstance(rows, list):
            last_backup = str(rows[-1].get("stamp")) if rows else "none"
        else:
            backup_error = f"clipper-backup list exited {code}: {_tail(err or out, 1)}"
    return HostStatus(
        host=host,
        reachable=True,
        active_color=color,
        active_release=active,
        healthy=bool(doc.get("healthy")),
        images={k: str(v) for k, v in (live.get("images") or {}).items()},
        lock=doc.get("lock") or None,
        releases=ids,
        previous_release=previous_of(ids, active),
        containers={
            role: str(info["name"])
            for role, info in live_containers.items()
            if isinstance(info, dict) and info.get("name")
        },
        last_backup=last_backup,
        backup_error=backup_error,
    )


def live_releases(statuses: Sequence[HostStatus]) -> dict[str, list[str]]:
    """release id -> the hosts serving it (reachable hosts only)."""
    live: dict[str, list[str]] = {}
    for status in statuses:
        if status.reachable:
            live.setdefault(status.active_release or "(none)", []).append(status.host)
    return live


def fleet_problems(
    statuses: Sequence[HostStatus], shipped: Mapping[str, str] | None = None
) -> list[str]:
    """Everything that makes the fleet's state wrong, one sentence each (empty: all good)."""
    problems = []
    for s in statuses:
        if not s.reachable:
            problems.append(f"{s.host} did not answer: {s.error}")
        elif not s.healthy:
            problems.append(f"{s.host} is unhealthy: its live colour {s.active_color} is not ready")
    live = live_releases(statuses)
    if len(live) > 1:
        where = "; ".join(f"{rid} on {', '.join(hosts)}" for rid, hosts in sorted(live.items()))
        problems.append(f"{len(live)} releases are live: {where}")
    for s in statuses:
        if shipped and s.reachable:
            wrong = {
                role: s.images.get(role)
                for role in SHIPPED_ROLES
                if role in shipped and s.images.get(role) != shipped[role]
            }
            if wrong:
                problems.append(
                    f"{s.host} serves {wrong} where the stack shipped "
                    f"{ {role: shipped[role] for role in wrong} }"
                )
    return problems


def describe_lock(lock: Mapping[str, Any] | None) -> str:
    if not lock:
        return "free"
    return (
        f"{lock.get('command', '?')} by {lock.get('user', '?')}"
        f" (pid {lock.get('pid', '?')}, since {lock.get('started_at', '?')})"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def status_table(statuses: Sequence[HostStatus]) -> str:
    """One row per host: colour, release, health, lock, last backup, the live images."""
    header = ["HOST", "COLOUR", "RELEASE", "HEALTH", "LOCK", "LAST BACKUP", "BACKEND", "FRONTEND"]
    rows = []
    for s in statuses:
        if not s.reachable:
            rows.append([s.host, "-", "-", "UNREACHABLE", "-", "-", "-", "-"])
            continue
        backup = s.last_backup or ("ERROR (status --json)" if s.backup_error else "-")
        rows.append([
            s.host, s.active_color or "-", s.active_release or "(none)",
            "ok" if s.healthy else "UNHEALTHY", describe_lock(s.lock), backup,
            s.images.get("backend", "-"), s.images.get("frontend", "-"),
        ])  # fmt: skip
    return _table(header, rows)


def lock_table(statuses: Sequence[HostStatus]) -> str:
    """Who holds each host's deploy lock."""
    rows = [
        [s.host, describe_lock(s.lock) if s.reachable else f"unknown: {s.error}"] for s in statuses
    ]
    return _table(["HOST", "LOCK"], rows)


def status_json(statuses: Sequence[HostStatus], problems: Sequence[str]) -> str:
    """The machine-readable form: every host, and the fleet's verdict."""
    return json.dumps(
        {
            "hosts": [
                {**asdict(s), "images": dict(s.images), "releases": list(s.releases)}
                for s in statuses
            ],
            "live_releases": live_releases(statuses),
            "problems": list(problems),
            "ok": not problems,
        },
        indent=2,
    )
