"""Run the real Pulumi program of one stack under the mock runtime, with no CLI and no cloud.

The stack's config is what the Pulumi CLI would hand the program: the project defaults from
`Pulumi.yaml`, overlaid with `Pulumi.<stack>.yaml`. Secrets that are required (or encrypted in
the stack file) get placeholder values, so a plan needs no passphrase and no credentials.
"""

from __future__ import annotations

import asyncio
import json
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.offline.mocks import ClipperMocks, RecordingMonitor, Registration
from components.settings import PROJECT, SECRET_KEYS, SettingsError

PROJECT_DIR = Path(__file__).resolve().parents[2]


def placeholder_secret(key: str) -> str:
    """The stand-in value of a secret in offline runs: recognisable in any rendered file."""
    return f"offline-placeholder-{key}"


def _as_config_string(value: Any) -> str:
    # The CLI hands top-level scalars to the program as strings, and lists/maps as JSON.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def stack_config(
    stack: str,
    project_dir: Path = PROJECT_DIR,
    overrides: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The config map (`clipper-infra:key` -> string) and secret keys for one stack.

    `overrides` replace or add stack values (a value of None removes the key); `secrets` set
    secret values. Without `secrets`, required secrets and secrets encrypted in the stack file
    get placeholders.
    """
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        raise FileNotFoundError(f"no stack file {stack_file.name}; stacks: staging, production")
    stack_values = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}

    config: dict[str, str] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            config[f"{PROJECT}:{key}"] = _as_config_string(spec["default"])
    secret_keys: list[str] = []
    for key, value in stack_values.items():
        if isinstance(value, dict) and "secure" in value:
            bare = key.split(":", 1)[1]
            config[key] = placeholder_secret(bare)
            secret_keys.append(key)
        else:
            config[key] = _as_config_string(value)
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = _as_config_string(value)

    if secrets is None:
        secrets = {k: placeholder_secret(k) for k, required in SECRET_KEYS.items() if required}
        channel = config.get(f"{PROJECT}:alertSlackChannel", "")
        if channel:
            secrets["alertSlackWebhookUrl"] = placeholder_secret("alertSlackWebhookUrl")
        if config.get(f"{PROJECT}:monitoringEnabled", "true") == "true":
            secrets["alertSmtpPassword"] = placeholder_secret("alertSmtpPassword")
    for key, value in secrets.items():
        full = f"{PROJECT}:{key}"
        config[full] = value
        secret_keys.append(full)
    return config, sorted(set(secret_keys))


@dataclass(frozen=True)
class ExportedValue:
    """A stack output as the engine would store it."""

    value: Any
    secret: bool


async def _resolve_outputs(exported: dict[str, Any]) -> dict[str, ExportedValue]:
    import pulumi

    resolved: dict[str, ExportedValue] = {}
    for name, value in exported.items():
        output = pulumi.Output.from_input(value)
        resolved[name] = ExportedValue(await output.future(), bool(await output.is_secret()))
    return resolved


@dataclass
class ProgramRun:
    """What one run of the program declared."""

    stack: str
    registrations: list[Registration]
    outputs: dict[str, ExportedValue]

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == typ]

    def named(self, name: str) -> Registration:
        for r in self.registrations:
            if r.name == name:
                return r
        raise KeyError(f"no resource named {name}; have: {[r.name for r in self.registrations]}")

    def parent_name(self, registration: Registration) -> str:
        parent = registration.parent_urn
        if not parent or parent.split("::")[2].endswith("pulumi:pulumi:Stack"):
            return ""
        return registration.parent_urn.rsplit("::", 1)[-1]


def run_program(
    stack: str,
    overrides: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    project_dir: Path = PROJECT_DIR,
    preview: bool = False,
    *,
    mocks: ClipperMocks | None = None,
) -> ProgramRun:
    """Run `__main__.py` of the project for `stack` under mocks and return what it declared.

    Raises `components.settings.SettingsError` for invalid settings (nothing is declared then).
    """
    import pulumi
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import wait_for_rpcs

    config, secret_keys = stack_config(stack, project_dir, overrides, secrets)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runtime_settings.reset_options()
    set_all_config(config, secret_keys)
    mocks = mocks or ClipperMocks()  # a test may move a registry tag (registry_digests)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    try:
        try:
            runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
        except pulumi.RunError as err:
            # Let the root stack's registration finish so the loop closes cleanly.
            loop.run_until_complete(wait_for_rpcs(await_all_outstanding_tasks=False))
            if isinstance(err.__cause__, SettingsError):
                raise err.__cause__ from None
            raise
        loop.run_until_complete(wait_for_rpcs())
        root = pulumi.runtime.get_root_resource()
        exported = dict(getattr(root, "outputs", {}) or {})
        outputs = loop.run_until_complete(_resolve_outputs(exported))
        loop.run_until_complete(wait_for_rpcs())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return ProgramRun(stack=stack, registrations=list(monitor.registrations), outputs=outputs)
