"""node_exporter textfile metrics: each file replaced atomically, so the exporter never reads
half of one. Rendering is pure; writing is one atomic_write."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .files import atomic_write

TEXTFILE_DIR = Path("/var/lib/prometheus/node-exporter")
RELEASE_METRICS_FILE = TEXTFILE_DIR / "clipper_release.prom"

_METRIC_LINE = re.compile(r"^([a-z_]+) (-?[0-9.e+]+)$")


def _gauge(name: str, help_text: str, samples: list[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples]


def _seconds(value: float) -> str:
    # Milliseconds, rounded down: a success time must never lie in the future.
    return f"{math.floor(value * 1000) / 1000:.3f}"


def render_gauges(help_texts: Mapping[str, str], values: Mapping[str, float]) -> str:
    """The gauges of `values` that `help_texts` knows, in its order."""
    lines: list[str] = []
    for name, help_text in help_texts.items():
        if name in values:
            lines += _gauge(name, help_text, [f"{name} {_seconds(values[name])}"])
    return "\n".join(lines) + "\n"


def read_gauges(path: Path, known: Mapping[str, str]) -> dict[str, float]:
    """The last values of the `known` gauges in a textfile (none when it is missing)."""
    current: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            match = _METRIC_LINE.match(line)
            if match and match[1] in known:
                current[match[1]] = float(match[2])
    return current


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_release_metrics(
    serving: Mapping[str, Any] | None,
    last_change: float | None,
    success: bool,
    attempt_at: float,
) -> str:
    """clipper_release.prom (the contract with the monitoring host's rules and dashboards)."""
    lines: list[str] = []
    if serving is not None:
        images = serving.get("images") or {}
        labels = ",".join(
            f'{key}="{_label(str(value))}"'
            for key, value in (
                ("release", serving.get("id", "")),
                ("color", serving.get("color", "")),
                ("backend_image", images.get("backend", "")),
                ("frontend_image", images.get("frontend", "")),
            )
        )
        info = f"clipper_release_info{{{labels}}} 1"
        lines += _gauge("clipper_release_info", "The release nginx serves on this host.", [info])
    if last_change is not None:
        name = "clipper_release_last_change_timestamp_seconds"
        lines += _gauge(name, "End of the last successful switch of colours.",
                        [f"{name} {_seconds(last_change)}"])  # fmt: skip
    name = "clipper_release_last_attempt_success"
    lines += _gauge(name, "1 when the last deploy or rollback succeeded, else 0.",
                    [f"{name} {1 if success else 0}"])  # fmt: skip
    name = "clipper_release_last_attempt_timestamp_seconds"
    lines += _gauge(name, "End of the last deploy or rollback attempt.",
                    [f"{name} {_seconds(attempt_at)}"])  # fmt: skip
    return "\n".join(lines) + "\n"


def write_textfile(path: Path, text: str) -> str | None:
    """Replace a textfile; a warning (not a failure) when it cannot be written."""
    try:
        atomic_write(path, text, 0o644)
    except OSError as exc:
        return f"warning: could not write metrics to {path}: {exc.strerror}"
    return None
