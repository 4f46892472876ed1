"""`clipper-release status`: the active colour, the releases, each container and its health,
and who holds the host lock (`--json`: the same as data; fields are added, never removed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .book import ReleaseBook
from .errors import EXIT_FAILED, EXIT_OK
from .files import read_json_object
from .host import Host
from .lock import describe_holder, holder_path, pid_alive
from .release_config import ROLES, Config


def gather_status(config: Config) -> dict[str, Any]:
    host = Host(config)
    book = ReleaseBook(config.state_dir)
    states = host.colors()
    disk = host.include_color()
    colors: dict[str, Any] = {}
    for color, state in states.items():
        probes = host.probes(color) if state.any_running else {}
        colors[color] = {
            "release": state.release or None,
            "ready": state.running and bool(probes) and all(ok for ok, _ in probes.values()),
            "containers": {
                role: {
                    "name": container.name,
                    "state": container.describe(),
                    "image": container.image or None,
                    "health": probes[role][1] if role in probes else None,
                    "restart_policy": container.restart_policy or None,
                }
                for role, container in zip(ROLES, state.containers, strict=True)
            },
        }
    holder = read_json_object(holder_path(config.state_dir))
    if holder and not pid_alive(holder.get("pid")):
        holder = None  # left by a killed run; the kernel already released its lock
    active_id = states[disk].release if disk else None
    return {
        "active_color": disk,
        "active_release": active_id or book.active,
        "healthy": bool(disk and colors[disk]["ready"]),
        "colors": colors,
        "releases": list(reversed(book.releases)),
        "history": book.history[-10:],
        "lock": holder,
        "images": config.images,
    }


def status(config: Config, as_json: bool) -> int:
    result = gather_status(config)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(status_text(result))
    return EXIT_OK if result["healthy"] else EXIT_FAILED


def status_text(status: Mapping[str, Any]) -> str:
    lines = [
        f"active colour:  {status['active_color'] or '(none yet)'}",
        f"active release: {status['active_release'] or '(none yet)'}",
        f"healthy:        {'yes' if status['healthy'] else 'NO'}",
        "",
    ]
    for color, info in status["colors"].items():
        mark = "*" if color == status["active_color"] else " "
        ready = "ready" if info["ready"] else "not ready"
        lines.append(f"{mark} {color:<6} {info['release'] or '-':<24} {ready}")
        for role, container in info["containers"].items():
            health = f"  {container['health']}" if container["health"] else ""
            lines.append(
                f"    {role:<9} {container['state']:<22} {container['image'] or ''}{health}"
            )
    lines.append("")
    lines.append("releases (newest first):")
    for record in status["releases"]:
        mark = "*" if record["id"] == status["active_release"] else " "
        lines.append(
            f"{mark} {record['id']:<24} {record.get('color', '?'):<6}"
            f" activated {record.get('activated_at', '?')}"
        )
    if not status["releases"]:
        lines.append("  (none)")
    lock = status["lock"]
    lines.append("")
    lines.append("deploy lock: " + (describe_holder(lock) if lock else "free"))
    return "\n".join(lines)
