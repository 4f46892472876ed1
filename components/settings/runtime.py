"""`load_settings`: the running stack's config from the Pulumi runtime, validated, and its secret
values as Pulumi secrets. The only code that reads `pulumi.Config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.settings.model import Settings
from components.settings.parse import parse_settings
from components.settings.project import PROJECT
from components.settings.secrets import SECRET_KEYS, Secrets


def _runtime_config() -> tuple[dict[str, Any], set[str]]:
    """All of this project's config from the Pulumi runtime, and which keys are secret."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {}
    merged.update(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    secret = set(runtime_config.get_config_secret_keys_env()) | set(
        runtime_config._SECRET_KEYS.get()
    )
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}
    return raw, {k[len(prefix) :] for k in secret if k.startswith(prefix)}


def sibling_vpc_ranges(project_dir: Path, stack: str) -> dict[str, str]:
    """The vpcIpRange of every other `Pulumi.<stack>.yaml` in the project (one account)."""
    import yaml

    ranges: dict[str, str] = {}
    for path in sorted(project_dir.glob("Pulumi.*.yaml")):
        other = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        values = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        value = values.get(f"{PROJECT}:vpcIpRange")
        if other != stack and isinstance(value, str):
            ranges[other] = value
    return ranges


def load_settings() -> tuple[Settings, Secrets]:
    """Read and validate the running stack's config; raise `SettingsError` before any resource.

    The program runs in the project directory (the Pulumi CLI's working directory for it), so
    the other stack files are read from there for the cross-stack VPC check.
    """
    import pulumi

    stack = pulumi.get_stack()
    raw, secret = _runtime_config()
    secret_present = {k for k in SECRET_KEYS if k in raw and k in secret}
    plain_present = {k for k in SECRET_KEYS if k in raw and k not in secret}
    others = sibling_vpc_ranges(Path.cwd(), stack)
    settings = parse_settings(stack, raw, secret_present, plain_present, others)

    config = pulumi.Config(PROJECT)

    def optional(key: str) -> pulumi.Output[str] | None:
        return config.require_secret(key) if key in secret_present else None

    secrets = Secrets(
        twitch_client_secret=config.require_secret("twitchClientSecret"),
        jwt_private_key=optional("jwtPrivateKey"),
        jwt_public_key=optional("jwtPublicKey"),
        stripe_secret_key=optional("stripeSecretKey"),
        stripe_webhook_secret=optional("stripeWebhookSecret"),
        sendgrid_api_key=optional("sendgridApiKey"),
        openai_api_key=optional("openaiApiKey"),
        sentry_dsn=optional("sentryDsn"),
        opensearch_password=optional("opensearchPassword"),
        alert_slack_webhook_url=optional("alertSlackWebhookUrl"),
        alert_smtp_password=optional("alertSmtpPassword"),
        stripe_webhook_secret_alt=optional("stripeWebhookSecretAlt"),
        stripe_webhook_secrets=optional("stripeWebhookSecrets"),
        sendgrid_webhook_public_key=optional("sendgridWebhookPublicKey"),
    )
    return settings, secrets
