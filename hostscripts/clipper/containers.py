"""What docker says about a colour's containers, parsed into plain values (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LABEL_RELEASE = "org.clipper.release"
LABEL_FINGERPRINT = "org.clipper.fingerprint"
LABEL_COLOR = "org.clipper.color"
LABEL_ROLE = "org.clipper.role"
LABEL_VERSION = "org.clipper.version"


@dataclass
class ContainerState:
    name: str
    exists: bool
    status: str = "missing"
    running: bool = False
    exit_code: int = 0
    restart_count: int = 0
    error: str = ""
    oom_killed: bool = False
    finished_at: str = ""
    image: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    restart_policy: str = ""

    @property
    def release(self) -> str:
        return self.labels.get(LABEL_RELEASE, "")

    @property
    def fingerprint(self) -> str:
        return self.labels.get(LABEL_FINGERPRINT, "")

    def describe(self) -> str:
        if not self.exists:
            return "missing"
        if self.running:
            return "running" + (f" (restarted {self.restart_count}x)" if self.restart_count else "")
        text = f"{self.status}, exit code {self.exit_code}"
        if self.oom_killed:
            text += ", killed for lack of memory"
        if self.error:
            text += f", error: {self.error}"
        return text


@dataclass
class ColorState:
    color: str
    backend: ContainerState
    frontend: ContainerState

    @property
    def containers(self) -> list[ContainerState]:
        return [self.backend, self.frontend]

    @property
    def running(self) -> bool:
        return self.backend.running and self.frontend.running

    @property
    def any_running(self) -> bool:
        return self.backend.running or self.frontend.running

    @property
    def exists(self) -> bool:
        return self.backend.exists and self.frontend.exists

    @property
    def release(self) -> str:
        return self.backend.release if self.backend.release == self.frontend.release else ""

    @property
    def fingerprint(self) -> str:
        same = self.backend.fingerprint == self.frontend.fingerprint
        return self.backend.fingerprint if same else ""


def parse_inspect(names: Sequence[str], stdout: str) -> dict[str, ContainerState]:
    """`docker container inspect NAMES`' JSON as one state per name (missing ones included)."""
    found: dict[str, ContainerState] = {name: ContainerState(name, exists=False) for name in names}
    try:
        docs: list[dict[str, Any]] = json.loads(stdout) if stdout.strip() else []
    except ValueError:
        docs = []
    for doc in docs:
        name = doc.get("Name", "").lstrip("/")
        state = doc.get("State") or {}
        config = doc.get("Config") or {}
        found[name] = ContainerState(
            name=name,
            exists=True,
            status=state.get("Status", "unknown"),
            running=bool(state.get("Running")) and not state.get("Restarting"),
            exit_code=int(state.get("ExitCode") or 0),
            restart_count=int(doc.get("RestartCount") or 0),
            error=state.get("Error") or "",
            oom_killed=bool(state.get("OOMKilled")),
            finished_at=state.get("FinishedAt") or "",
            image=config.get("Image", ""),
            labels=dict(config.get("Labels") or {}),
            restart_policy=((doc.get("HostConfig") or {}).get("RestartPolicy") or {}).get(
                "Name", ""
            ),
        )
    return found
