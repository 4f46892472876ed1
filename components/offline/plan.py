"""`plan`: what a stack declares, as text or JSON, with secrets shown as `[secret]`."""

from __future__ import annotations

import json
from typing import Any

from pulumi.runtime import rpc

from components.offline.runner import ProgramRun

SECRET = "[secret]"  # noqa: S105 (the mask, not a secret)
# Long text inputs (user-data, scripts) are summarised: a plan is for reading.
_MAX_TEXT = 120


def redact(value: Any) -> Any:
    """The value with every secret replaced by `[secret]` and unknowns by `[unknown]`."""
    if rpc.is_rpc_secret(value):
        return SECRET
    if value is rpc.UNKNOWN or value == rpc.UNKNOWN:
        return "[unknown]"
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _summarise(value: Any) -> Any:
    if isinstance(value, str) and (len(value) > _MAX_TEXT or "\n" in value):
        first = value.splitlines()[0] if value else ""
        return f"<{len(value)} chars: {first[:60]}...>"
    if isinstance(value, dict):
        return {k: _summarise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_summarise(v) for v in value]
    return value


def plan_rows(run: ProgramRun) -> list[dict[str, Any]]:
    """One row per declared resource, sorted by name: registration order depends on which
    outputs resolve first, and a plan must read the same on every run."""
    rows = []
    for reg in sorted(run.registrations, key=lambda r: r.name):
        options: dict[str, Any] = {
            name: True
            for name, on in (
                ("protect", reg.protect),
                ("retainOnDelete", reg.retain_on_delete),
                ("deleteBeforeReplace", reg.delete_before_replace),
            )
            if on
        }
        if reg.ignore_changes:
            options["ignoreChanges"] = list(reg.ignore_changes)
        if reg.replace_on_changes:
            options["replaceOnChanges"] = list(reg.replace_on_changes)
        if reg.alias_types:
            options["aliases"] = list(reg.alias_types)
        rows.append(
            {
                "type": reg.type,
                "name": reg.name,
                "parent": run.parent_name(reg),
                "inputs": redact(reg.inputs),
                "options": options,
            }
        )
    return rows


def plan_json(run: ProgramRun) -> str:
    outputs = {
        name: (SECRET if out.secret else redact(out.value)) for name, out in run.outputs.items()
    }
    return json.dumps(
        {"stack": run.stack, "resources": plan_rows(run), "count": len(run.registrations),
         "outputs": outputs},
        indent=2, sort_keys=False, default=str,
    )  # fmt: skip


def plan_text(run: ProgramRun) -> str:
    """A tree of resources (children indented under their component) with key inputs."""
    rows = plan_rows(run)
    children: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        children.setdefault(row["parent"], []).append(row)
    lines = [f"Stack {run.stack}: resources declared (offline, mock runtime)", ""]

    def emit(parent: str, depth: int) -> None:
        for row in children.get(parent, []):
            opts = " ".join(
                f"[{k}]" if v is True else f"[{k}={','.join(v)}]" for k, v in row["options"].items()
            )
            lines.append(f"{'  ' * depth}{row['type']}  {row['name']}  {opts}".rstrip())
            inputs = _summarise(row["inputs"])
            for key in sorted(inputs):
                if key in ("__provider",) or key.startswith("__"):
                    continue
                text = json.dumps(inputs[key], default=str)
                lines.append(f"{'  ' * depth}    {key}: {text}")
            emit(row["name"], depth + 1)

    emit("", 0)
    lines.append("")
    lines.append("Outputs:")
    for name, out in sorted(run.outputs.items()):
        shown = SECRET if out.secret else json.dumps(redact(out.value), default=str)
        lines.append(f"    {name}: {shown}")
    lines.append("")
    lines.append(f"{len(rows)} resources")
    return "\n".join(lines)
