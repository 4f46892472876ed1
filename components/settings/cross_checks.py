"""Rules that tie several settings together (often of different concerns); `parse_settings`
runs them only when each value is valid on its own."""

from __future__ import annotations

import json

from components.provider import rules as provider_rules
from components.settings import image_rules
from components.settings.model import Settings
from components.settings.project import PROJECT, PROJECT_DIR


def cross_checks(s: Settings) -> list[str]:
    """Rules that tie several settings together; run only when each value is valid on its own."""
    problems: list[str] = []
    if s.app_count > 1 and not s.uses_load_balancer:
        problems.append(
            f'{PROJECT}:edgeEntry = "{s.edge_entry}": appCount is {s.app_count}; more than one'
            ' droplet needs edgeEntry "load-balancer"'
        )
    if s.environment == "production" and not s.db_protect:
        problems.append(
            f"{PROJECT}:dbProtect = false: a production environment must protect its database"
        )
    if s.cors_allowed_origins and s.cors_allowed_origins[0] != s.site_url:
        problems.append(
            f"{PROJECT}:corsAllowedOrigins = {json.dumps(s.cors_allowed_origins)}: the first"
            f" origin receives the Twitch OAuth redirect and must be the site, {s.site_url}"
        )
    if bool(s.opensearch_url) != bool(s.opensearch_username):
        problems.append(
            f'{PROJECT}:opensearchUsername = "{s.opensearch_username}": set it together with'
            " opensearchUrl, or leave both empty"
        )
    if s.api_rate_burst < s.api_rate_limit_rps or s.general_rate_burst < s.general_rate_limit_rps:
        problems.append(
            f"{PROJECT}:apiRateBurst/generalRateBurst = {s.api_rate_burst}/{s.general_rate_burst}:"
            " a burst below its rate rejects ordinary page loads; allowed: at least the rate"
        )
    problems.extend(provider_rules.problems(s))
    return problems


def image_checks(s: Settings) -> list[str]:
    """Where built images come from and go to: a source to build from, a registry that fits."""
    problems: list[str] = []
    built = s.images_to_build
    if built and not (s.app_source_ref or s.app_source_path):
        problems.append(
            f'{PROJECT}:appSourceRef = "": {", ".join(built)} set to "build" need the app\'s'
            " source: allowed: a tag or commit of appSourceGitUrl (or appSourcePath for"
            " development)"
        )
    if s.app_source_path and not (PROJECT_DIR / s.app_source_path).is_dir():
        problems.append(
            f'{PROJECT}:appSourcePath = "{s.app_source_path}": no such directory (relative paths'
            f" start at {PROJECT_DIR}); allowed: a checkout of the app with backend/ and frontend/"
        )
    if s.app_source_ref and s.app_source_path:
        problems.append(
            f'{PROJECT}:appSourcePath = "{s.app_source_path}": set either appSourcePath or'
            f' appSourceRef ("{s.app_source_ref}"), not both: which source to build is ambiguous'
        )
    limit = image_rules.REGISTRY_TIER_REPOSITORIES[s.registry_tier]
    if s.registry_create and limit is not None and len(built) > limit:
        problems.append(
            f'{PROJECT}:registryTier = "{s.registry_tier}": holds {limit} repository, and this'
            f" stack builds {len(built)} images ({', '.join(built)}); allowed: basic or"
            " professional"
        )
    if s.registry_create and s.effective_registry_region not in image_rules.REGISTRY_REGIONS:
        problems.append(
            f'{PROJECT}:registryRegion = "{s.registry_region}": region {s.region} has no'
            " DigitalOcean Container Registry; allowed: one of "
            + ", ".join(sorted(image_rules.REGISTRY_REGIONS))
        )
    return problems


def integration_checks(s: Settings, present: set[str], stack: str) -> list[str]:
    """Optional integrations are all-or-nothing: a half-configured one fails at runtime."""
    problems: list[str] = []

    def secret(key: str) -> str:
        return f"`pulumi config set --secret {key} <value> -s {stack}`"

    stripe = "stripeSecretKey" in present
    prices = {
        "stripeProMonthlyPriceId": s.stripe_pro_monthly_price_id,
        "stripeProYearlyPriceId": s.stripe_pro_yearly_price_id,
    }
    for key, value in prices.items():
        if stripe and not value:
            problems.append(
                f'{PROJECT}:{key} = "": stripeSecretKey turns on premium subscriptions, whose'
                " checkout needs the plan's Stripe price id (price_...)"
            )
        if value and not stripe:
            problems.append(
                f'{PROJECT}:{key} = "{value}": needs the Stripe secret key: run'
                f" {secret('stripeSecretKey')}"
            )
    if stripe and "stripeWebhookSecret" not in present:
        problems.append(
            f"{PROJECT}:stripeSecretKey is set without stripeWebhookSecret: Stripe's events"
            f" (paid, cancelled) would be refused; run {secret('stripeWebhookSecret')}"
        )
    for key in ("stripeWebhookSecretAlt", "stripeWebhookSecrets"):
        if key in present and "stripeWebhookSecret" not in present:
            problems.append(
                f"{PROJECT}:{key} is an extra Stripe signing secret (for rotation); set the"
                f" primary one first: run {secret('stripeWebhookSecret')}"
            )
    # Refused, not warned: without the key the app accepts unsigned posts to its SendGrid
    # webhook, so anyone could mark addresses bounced or unsubscribed while email is on.
    if "sendgridApiKey" in present and "sendgridWebhookPublicKey" not in present:
        problems.append(
            f"{PROJECT}:sendgridApiKey is set without sendgridWebhookPublicKey: the app would"
            " accept unsigned posts to /api/v1/webhooks/sendgrid; run"
            f" {secret('sendgridWebhookPublicKey')} (SendGrid's Signed Event Webhook key)"
        )
    return problems
