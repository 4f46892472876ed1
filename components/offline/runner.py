"""Run the real Pulumi program of one stack under the mock runtime, with no CLI and no cloud.

The stack's config is what the Pulumi CLI would hand the program: the project defaults from
`Pulumi.yaml`, overlaid with `Pulumi.<stack>.yaml`, each value a string (lists and maps as
JSON), and the list of secret keys. Like `pulumi preview`, a value stored in plain text is
passed in plain text, not as a secret, even under a secret's key (the program refuses it);
a `secure:` value is passed as a secret, with a placeholder for its plaintext (no passphrase
here). Only a secret the stack file does not mention at all gets a placeholder, standing in
for the operator's `pulumi config set --secret`, so a plan needs no credentials. The program
runs in the project directory, as the CLI runs it. What the CLI refuses before starting the
program (cli_config.py) and what the provider's checks refuse after it declared its resources
(components/provider/inputs.py) stop the run the same way: `SettingsError`, exit 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.offline.cli_config import cli_config_problems
from components.offline.mocks import ClipperMocks, RecordingMonitor, Registration, unwrap_secrets
from components.provider.inputs import input_problems
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


def stack_file(
    stack: str, project_dir: Path = PROJECT_DIR, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`Pulumi.yaml`'s config declarations, and the stack file's values (`clipper-infra:key` ->
    value as written) with `overrides` applied (None removes a key)."""
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name}; stacks: staging, production")
    values = dict((yaml.safe_load(path.read_text()) or {}).get("config") or {})
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            values.pop(full, None)
        else:
            values[full] = value
    return dict(project.get("config") or {}), values


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
    project_config, stack_values = stack_file(stack, project_dir, overrides)
    config: dict[str, str] = {}
    for key, spec in project_config.items():
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

    if secrets is None:
        needed = {k for k, required in SECRET_KEYS.items() if required}
        if config.get(f"{PROJECT}:alertSlackChannel", ""):
            needed.add("alertSlackWebhookUrl")
        if config.get(f"{PROJECT}:monitoringEnabled", "true") == "true":
            needed.add("alertSmtpPassword")
        # Only what the stack file does not mention: a plain value stays plain, as in the CLI.
        secrets = {k: placeholder_secret(k) for k in needed if f"{PROJECT}:{k}" not in config}
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

    # What the CLI checks before it starts the program: missing keys, declared types.
    refused = cli_config_problems(PROJECT, stack, *stack_file(stack, project_dir, overrides))
    if refused:
        raise SettingsError(stack, refused)
    config, secret_keys = stack_config(stack, project_dir, overrides, secrets)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runtime_settings.reset_options()
    set_all_config(config, secret_keys)
    mocks = mocks or ClipperMocks()  # a test may move a registry tag (registry_digests)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    working_dir = Path.cwd()
    os.chdir(project_dir)
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
        os.chdir(working_dir)
        loop.close()
        asyncio.set_event_loop(None)
    refused = provider_refusals(monitor.registrations)
    if refused:
        raise ProviderRefusalError(stack, refused)
    return ProgramRun(stack=stack, registrations=list(monitor.registrations), outputs=outputs)


class ProviderRefusalError(SettingsError):
    """Inputs the DigitalOcean provider's own checks would refuse at `pulumi preview`."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        super().__init__(stack, problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        self.args = (
            f"stack '{stack}': the provider would refuse {len(problems)} input(s) at preview;"
            f" nothing was created:\n{lines}",
        )


def provider_refusals(registrations: list[Registration]) -> list[str]:
    """What the provider's Check step would refuse (components/provider/inputs.py), per resource;
    the real preview stops there too, before anything is created."""
    return [
        f"{r.name} ({r.type.rsplit(':', 1)[-1]}): {problem}"
        for r in registrations
        if r.custom
        for problem in input_problems(r.type, unwrap_secrets(r.inputs))
    ]
