"""The Pulumi CLI's own checks of a stack file against `Pulumi.yaml`, before the program runs.

`pulumi preview` refuses a stack whose file lacks a project key that has no default ("Stack 'x'
is missing configuration value 'k'"), or whose value does not fit the key's declared type
("... must be of type 'integer'"). The offline engine makes the same checks, so it refuses the
same stack files (pulumi/pulumi pkg/workspace/config.go: mergeConfig, validateStackConfigValue;
sdk/go/common/workspace/project.go: ValidateConfigValue). Each problem names the key, the value
and what is allowed, and quotes the CLI's message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _fits(kind: str, items: Mapping[str, Any] | None, value: Any) -> bool:
    """ValidateConfigValue: strings as the CLI holds them ("1", "true"), objects decoded."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return _fits_integer(value)
    if kind == "boolean":
        return value in ("true", "false") or isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(_fits(items.get("type", ""), items.get("items"), item) for item in value)


def _fits_integer(value: Any) -> bool:
    """An integer, a float with no fraction, or its text as Go's strconv.Atoi reads it."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int) or (isinstance(value, float) and value == int(value)):
        return True
    if isinstance(value, str):
        text = value[1:] if value[:1] in "+-" else value
        return text.isascii() and text.isdigit()  # Go's strconv.Atoi
    return False


def _type_name(kind: str, items: Mapping[str, Any] | None) -> str:
    """InferFullTypeName: 'array<string>' for arrays."""
    if kind == "array" and items is not None:
        return f"array<{_type_name(items.get('type', ''), items.get('items'))}>"
    return kind


def _held(value: Any) -> Any:
    """The value as the CLI holds it: scalars as their string form, lists and maps decoded."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return value
    return str(value)


def _missing_message(stack: str, keys: list[str]) -> str:
    quoted = [f"'{k}'" for k in sorted(keys)]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" and {quoted[-1]}"
    return f"Stack '{stack}' is missing configuration value{'s' if len(keys) > 1 else ''} {listed}"


def cli_config_problems(
    project_name: str,
    stack: str,
    project_config: Mapping[str, Any],
    stack_values: Mapping[str, Any],
) -> list[str]:
    """What `pulumi preview` would refuse in `Pulumi.<stack>.yaml`, before running the program."""
    values = {k.removeprefix(f"{project_name}:"): v for k, v in stack_values.items()}
    missing = [
        key
        for key, spec in project_config.items()
        if key not in values and not (isinstance(spec, dict) and "default" in spec)
    ]
    if missing:
        cli = _missing_message(stack, missing)
        return [
            f"{project_name}:{key} is not set; the Pulumi CLI stops first: {cli}"
            for key in sorted(missing)
        ]
    for key in sorted(project_config):
        spec = project_config[key]
        if not isinstance(spec, dict) or "type" not in spec or key not in values:
            continue
        value = values[key]
        if isinstance(value, dict) and "secure" in value:
            continue  # decrypted by the CLI; placeholders here are strings
        if not _fits(spec["type"], spec.get("items"), _held(value)):
            kind = _type_name(spec["type"], spec.get("items"))
            cli = f"Stack '{stack}' with configuration key '{key}' must be of type '{kind}'"
            # The CLI stops at the first mismatch.
            return [
                f"{project_name}:{key} = {json.dumps(value)}: allowed: a value of type '{kind}'"
                f" (Pulumi.yaml); the Pulumi CLI stops first: {cli}"
            ]
    return []
