"""Run the real program under the shared mocks, for unit tests (same engine as `plan`)."""

from __future__ import annotations

import functools
import json
from typing import Any

from pulumi.runtime import rpc

from components.host.files import role_of
from components.offline.mocks import Registration
from components.offline.runner import ProgramRun, run_program, stack_config
from components.settings import PROJECT, Settings, parse_settings

# Stripe's plans, which settings require whenever a test sets stripeSecretKey.
STRIPE_PRICES = {
    "stripeProMonthlyPriceId": "price_1TestMonthly0123",
    "stripeProYearlyPriceId": "price_1TestYearly01234",
}


@functools.cache
def _cached_run(stack: str) -> ProgramRun:
    return run_program(stack)


def stack_run(stack: str) -> ProgramRun:
    """The program for `stack` with its committed config, run once per test session."""
    return _cached_run(stack)


def custom_run(
    stack: str, overrides: dict[str, Any] | None = None, secrets: dict[str, str] | None = None
) -> ProgramRun:
    """The program for `stack` with some settings or secrets changed (not cached)."""
    return run_program(stack, overrides=overrides, secrets=secrets)


def default_secrets(stack: str, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """The secrets an offline run gets when given none (placeholders), by bare key: merge a
    test's own values over them so new required secrets do not break unrelated tests."""
    config, secret_keys = stack_config(stack, overrides=overrides)
    return {key.split(":", 1)[1]: config[key] for key in secret_keys}


def of_role(run: ProgramRun, typ: str, role: str = "app") -> list[Registration]:
    """Registrations of `typ` whose `tags` name host `role` (droplets, cloud firewalls): the
    stack has app droplets and a monitoring droplet, each with its own firewall."""
    return [r for r in run.of_type(typ) if role_of(list(plain(r.inputs.get("tags")) or [])) == role]


def is_secret(value: Any) -> bool:
    return bool(rpc.is_rpc_secret(value))


def plain(value: Any) -> Any:
    """A recorded value with secret markers removed (for asserting on contents)."""
    if rpc.is_rpc_secret(value):
        return plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def contains_text(value: Any, needle: str) -> bool:
    """Whether `needle` appears anywhere in a recorded value, secret or not."""
    return needle in json.dumps(plain(value), default=str)


def settings_for(stack: str, **overrides: Any) -> Settings:
    """A stack's validated settings from its committed files, with no Pulumi runtime: what the
    pure renderers take."""
    config, secret_keys = stack_config(stack, overrides=overrides)
    raw = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(PROJECT)}
    return parse_settings(stack, raw, {key.split(":", 1)[1] for key in secret_keys})
