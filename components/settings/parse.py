"""`parse_settings`: one stack's raw config in, a frozen `Settings` out, or a `SettingsError`
listing every problem at once (unknown keys with a did-you-mean, each invalid value with its
rule, missing or plain-text secrets, and the rules that tie settings together)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from components.provider import rules as provider_rules
from components.settings.cross_checks import cross_checks, image_checks, integration_checks
from components.settings.model import Settings
from components.settings.project import PROJECT, SettingsError
from components.settings.secrets import SECRET_KEYS


def config_keys() -> list[str]:
    """The non-secret config keys, as operators type them (camelCase)."""
    return [field.alias or name for name, field in Settings.model_fields.items()]


def _decode(key: str, raw: Any) -> Any:
    """Config values arrive as strings; lists (and numbers) as JSON text."""
    field = Settings.model_fields.get(_snake(key))
    if isinstance(raw, str) and field is not None and field.annotation is not str:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _describe_error(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    key = f"{PROJECT}:{loc[0]}" + "".join(f"[{p}]" for p in loc[1:])
    if error["type"] == "missing":
        return f"{key} is not set; allowed: see its description in Pulumi.yaml"
    value = json.dumps(error.get("input"), default=str)
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key} = {value}: {message}"


def parse_settings(
    stack: str,
    raw: dict[str, Any],
    secret_keys_set: set[str] | frozenset[str] = frozenset(),
    plain_keys_set: set[str] | frozenset[str] = frozenset(),
    other_vpc_ranges: Mapping[str, str] | None = None,
) -> Settings:
    """Validate one stack's raw config (keys without the namespace) into `Settings`.

    `secret_keys_set` names the secret keys present as secrets; `plain_keys_set` names secret
    keys that were (wrongly) set in plain text; `other_vpc_ranges` maps the project's other
    stacks to their vpcIpRange (one account: they must not overlap). Raises `SettingsError`
    with every problem found.
    """
    present = set(secret_keys_set) | set(plain_keys_set)
    values, problems = _known_values(raw)
    problems.extend(_secret_problems(stack, present, plain_keys_set))
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(values)
    except ValidationError as err:
        problems.extend(_describe_error(e) for e in err.errors())
    if settings is not None:
        problems.extend(_settings_problems(stack, settings, present, other_vpc_ranges or {}))
    if problems:
        raise SettingsError(stack, problems)
    assert settings is not None
    return settings


def _known_values(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The non-secret values decoded, and a problem (with a did-you-mean) per unknown key."""
    problems: list[str] = []
    known = set(config_keys())
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECRET_KEYS:
            continue
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known | set(SECRET_KEYS)), n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            problems.append(
                f"{PROJECT}:{key} = {json.dumps(value)}: unknown key; {hint}"
                "allowed keys are listed in Pulumi.yaml"
            )
            continue
        values[key] = _decode(key, value)
    return values, problems


def _secret_problems(
    stack: str, present: set[str], plain_keys_set: set[str] | frozenset[str]
) -> list[str]:
    """Secrets kept in plain text, required secrets missing, half a JWT key pair."""
    problems = [
        f"{PROJECT}:{key} is stored in plain text; it is a secret: run"
        f" `pulumi config set --secret {key} <value> -s {stack}`"
        for key in sorted(plain_keys_set)
    ]
    for key, required in SECRET_KEYS.items():
        if required and key not in present:
            problems.append(
                f"{PROJECT}:{key} is not set; it is a required secret: run"
                f" `pulumi config set --secret {key} <value> -s {stack}`"
            )
    if ("jwtPrivateKey" in present) != ("jwtPublicKey" in present):
        problems.append(
            f"{PROJECT}:jwtPrivateKey/jwtPublicKey: set both (a PEM key pair) or neither"
            " (the program then generates one)"
        )
    return problems


def _settings_problems(
    stack: str, settings: Settings, present: set[str], other_vpc_ranges: Mapping[str, str]
) -> list[str]:
    """The rules that tie valid settings together, to each other, the secrets and other stacks."""
    problems = list(cross_checks(settings))
    problems.extend(provider_rules.vpc_overlaps(stack, settings.vpc_ip_range, other_vpc_ranges))
    if settings.alert_slack_channel and "alertSlackWebhookUrl" not in present:
        problems.append(
            f'{PROJECT}:alertSlackChannel = "{settings.alert_slack_channel}": needs the'
            f" secret: run `pulumi config set --secret alertSlackWebhookUrl <url> -s {stack}`"
        )
    if settings.monitoring_enabled and "alertSmtpPassword" not in present:
        problems.append(
            f"{PROJECT}:monitoringEnabled = true: Alertmanager needs the SMTP password: run"
            f" `pulumi config set --secret alertSmtpPassword <password> -s {stack}`"
        )
    problems.extend(image_checks(settings))
    problems.extend(integration_checks(settings, present, stack))
    return problems
