"""`<state>/releases.json`: the releases on this host (oldest first), the active one, and a
short history of switches. A file of the wrong shape stops the command with its name, before
anything moves (the serving colour keeps serving)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .clock import iso, now_utc
from .errors import ConfigError
from .files import atomic_write, read_text

HISTORY_KEEP = 50


def _checked(doc: Any, path: Path) -> dict[str, Any]:
    """The document, or ConfigError saying what is wrong with it and what to do."""
    fix = "move it aside to start a new record (the containers keep running)"
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a JSON object; {fix}")
    releases = doc.get("releases") or []
    if not isinstance(releases, list) or not all(
        isinstance(r, dict)
        and isinstance(r.get("id"), str)
        and isinstance(r.get("images", {}), dict)
        for r in releases
    ):
        raise ConfigError(f"{path}: 'releases' must be a list of records with an id; {fix}")
    if not isinstance(doc.get("active"), str | None):
        raise ConfigError(f"{path}: 'active' must be a release id or null; {fix}")
    if not isinstance(doc.get("history") or [], list):
        raise ConfigError(f"{path}: 'history' must be a list; {fix}")
    return doc


class ReleaseBook:
    """The release record of this host."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "releases.json"
        doc: dict[str, Any] = {}
        text = read_text(self.path)
        if text:
            try:
                doc = _checked(json.loads(text), self.path)
            except ValueError:
                raise ConfigError(
                    f"{self.path} is not valid JSON; move it aside to start a new record"
                ) from None
        self.releases: list[dict[str, Any]] = list(doc.get("releases") or [])
        self.active: str | None = doc.get("active")
        self.history: list[dict[str, Any]] = list(doc.get("history") or [])

    def get(self, rid: str) -> dict[str, Any] | None:
        return next((record for record in self.releases if record["id"] == rid), None)

    def activate(
        self, record: dict[str, Any], color: str, action: str, *, move_to_end: bool
    ) -> None:
        at = iso(now_utc())
        existing = self.get(record["id"])
        if existing is not None and self.active == record["id"] and existing.get("color") == color:
            return  # already recorded (a re-run after a kill)
        entry = {**(existing or {}), **record, "color": color, "activated_at": at}
        entry.setdefault("deployed_at", at)
        if existing is not None:
            index = self.releases.index(existing)
            if move_to_end:
                del self.releases[index]
                self.releases.append(entry)
            else:
                self.releases[index] = entry
        else:
            self.releases.append(entry)
        self.history.append({"at": at, "action": action, "release": record["id"], "color": color})
        self.history = self.history[-HISTORY_KEEP:]
        self.active = record["id"]
        self.save()

    def save(self) -> None:
        doc = {
            "schema": 1,
            "active": self.active,
            "releases": self.releases,
            "history": self.history,
        }
        atomic_write(self.path, json.dumps(doc, indent=2) + "\n")
