"""The env files: exactly the variables the backend reads, in a format the host script parses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from components.offline.runner import stack_config
from components.renderers.env_file import (
    BACKEND_OPTIONAL_KEYS,
    BACKEND_REQUIRED_KEYS,
    BACKEND_SWITCH_KEYS,
    BackendSecretValues,
    PostgresLoginValues,
    backend_env,
    db_admin_env,
    render_env_file,
)
from components.settings import Settings, SettingsError, parse_settings
from tests.support.program import STRIPE_PRICES, custom_run, default_secrets, plain, settings_for

PROJECT = Path(__file__).resolve().parents[2]
HOST_SCRIPT = PROJECT / "hostscripts" / "clipper-release"

# What the real backend reads (config/config.go, see ../shared/clipper-app.md), written out here
# independently of the renderer's own list.
APP_READS = {
    "PORT", "GIN_MODE", "ENVIRONMENT", "BASE_URL",
    "DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "DB_SSLMODE",
    "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB",
    "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "MFA_ENCRYPTION_KEY",
    "TWITCH_CLIENT_ID", "TWITCH_CLIENT_SECRET", "TWITCH_REDIRECT_URI",
    "CORS_ALLOWED_ORIGINS", "WEBSOCKET_ALLOWED_ORIGINS",
    # The integrations' on-switches: the app defaults each to off, so they are always written.
    "SENTRY_ENABLED", "EMAIL_ENABLED", "EMBEDDING_ENABLED", "FEATURE_PREMIUM_SUBSCRIPTIONS",
}  # fmt: skip
OPTIONAL_INTEGRATIONS = {
    "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET_ALT",
    "STRIPE_WEBHOOK_SECRETS", "STRIPE_PRO_MONTHLY_PRICE_ID", "STRIPE_PRO_YEARLY_PRICE_ID",
    "STRIPE_SUCCESS_URL", "STRIPE_CANCEL_URL", "SENDGRID_API_KEY", "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "OPENAI_API_KEY", "SENTRY_DSN", "SENTRY_ENVIRONMENT", "OPENSEARCH_URL",
    "OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD", "OPENSEARCH_INSECURE_SKIP_VERIFY",
}  # fmt: skip
SWITCHES_OFF = {
    "SENTRY_ENABLED": "false", "EMAIL_ENABLED": "false", "EMBEDDING_ENABLED": "false",
    "FEATURE_PREMIUM_SUBSCRIPTIONS": "false",
}  # fmt: skip

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----\n"
)
# The tricky values both sides of the contract test: a PEM key, quotes, `$`, `=`, spaces.
TRICKY = {
    "PEM_KEY": PEM,
    "QUOTES": "say \"hi\" and 'bye'",
    "DOLLAR": "pa$$word$HOME${PATH}",
    "EQUALS": "a=b==c=",
    "SPACES": "  leading and trailing  ",
    "BACKSLASH": "C:\\path\\n-not-a-newline\\",
    "HASH": "not # a comment",
    "EMPTY": "",
    "PLAIN": "https://clipper.example.com,https://www.clipper.example.com",
    "UNICODE": "clé ünïcödé ✓",
    "TAB_INSIDE": "a\tb",
}


DB = PostgresLoginValues("private-db.example", 25061, "clipper", "db-pass", "clipper-pool")
SECRETS = BackendSecretValues(
    redis_password="redis-pass",
    jwt_private_key=PEM,
    jwt_public_key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    mfa_encryption_key="q2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2U=",
    twitch_client_secret="twitch-secret",
)


def _parse_like_dotenv(text: str) -> dict[str, str]:
    """A reference reader of the contract's format, independent of the renderer."""
    values: dict[str, str] = {}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        key, _, raw = line.partition("=")
        if raw.startswith('"'):
            assert raw.endswith('"') and len(raw) >= 2, line
            body, out, i = raw[1:-1], [], 0
            while i < len(body):
                if body[i] == "\\":
                    out.append({"n": "\n", "\\": "\\", '"': '"'}[body[i + 1]])
                    i += 2
                else:
                    assert body[i] != '"', f"unescaped quote in {line!r}"
                    out.append(body[i])
                    i += 1
            values[key] = "".join(out)
        else:
            values[key] = raw
    return values


def test_backend_env_has_exactly_the_variables_the_app_reads() -> None:
    env = backend_env(settings_for("staging"), DB, SECRETS)
    assert set(env) == APP_READS


def test_backend_env_points_redis_at_the_local_tunnel_and_requires_tls_to_postgres() -> None:
    settings = settings_for("staging")
    env = backend_env(settings, DB, SECRETS)
    assert (env["REDIS_HOST"], env["REDIS_PORT"], env["REDIS_DB"]) == (
        "127.0.0.1",
        str(settings.cache_tunnel_port),
        "0",
    )
    assert env["DB_SSLMODE"] == "require"
    assert (env["DB_HOST"], env["DB_PORT"], env["DB_NAME"]) == (
        "private-db.example",
        "25061",
        "clipper-pool",
    )


def test_backend_env_carries_release_mode_environment_and_the_site_urls() -> None:
    env = backend_env(settings_for("production"), DB, SECRETS)
    assert env["GIN_MODE"] == "release"
    assert env["ENVIRONMENT"] == "production"
    assert env["PORT"] == "8080"
    assert env["BASE_URL"] == "https://clipper.example.com"
    assert env["TWITCH_REDIRECT_URI"] == "https://clipper.example.com/api/v1/auth/twitch/callback"
    # Exact-match origins, comma-separated; the first gets the OAuth redirect.
    assert (
        env["CORS_ALLOWED_ORIGINS"] == "https://clipper.example.com,https://www.clipper.example.com"
    )
    assert env["WEBSOCKET_ALLOWED_ORIGINS"].split(",")[0] == "https://clipper.example.com"


def test_empty_origin_lists_mean_the_site_itself() -> None:
    env = backend_env(settings_for("staging"), DB, SECRETS)
    assert env["CORS_ALLOWED_ORIGINS"] == "https://staging.clipper.example.com"
    assert env["WEBSOCKET_ALLOWED_ORIGINS"] == "https://staging.clipper.example.com"


def _with(**secrets: str) -> BackendSecretValues:
    return BackendSecretValues(**{**SECRETS.__dict__, **secrets})


def _added(settings: Settings, secrets: BackendSecretValues) -> dict[str, str]:
    """What an integration adds to the file: switches that moved and its own variables."""
    env = backend_env(settings, DB, secrets)
    return {
        k: v
        for k, v in env.items()
        if k in OPTIONAL_INTEGRATIONS or (k in SWITCHES_OFF and v != SWITCHES_OFF[k])
    }


def test_without_integrations_every_switch_is_off_and_no_integration_variable_is_written() -> None:
    env = backend_env(settings_for("staging"), DB, SECRETS)
    assert {k: env[k] for k in SWITCHES_OFF} == SWITCHES_OFF
    assert not set(env) & OPTIONAL_INTEGRATIONS


def test_a_sentry_dsn_turns_sentry_on_and_names_the_environment() -> None:
    added = _added(settings_for("production"), _with(sentry_dsn="https://k@s.io/1"))
    assert added == {
        "SENTRY_ENABLED": "true",
        "SENTRY_DSN": "https://k@s.io/1",
        "SENTRY_ENVIRONMENT": "production",
    }


def test_a_sendgrid_key_turns_email_on_with_the_webhook_signature_key() -> None:
    secrets = _with(sendgrid_api_key="SG.key", sendgrid_webhook_public_key="MFkw-public-key")
    assert _added(settings_for("staging"), secrets) == {
        "EMAIL_ENABLED": "true",
        "SENDGRID_API_KEY": "SG.key",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkw-public-key",
    }


def test_an_openai_key_turns_embeddings_on() -> None:
    assert _added(settings_for("staging"), _with(openai_api_key="sk-openai")) == {
        "EMBEDDING_ENABLED": "true",
        "OPENAI_API_KEY": "sk-openai",
    }


def _stripe_settings(**overrides: str) -> Settings:
    """Production's settings as validated when Stripe's two secrets are set."""
    config, secret_keys = stack_config("production", overrides={**STRIPE_PRICES, **overrides})
    raw = {key.split(":", 1)[1]: value for key, value in config.items()}
    present = {key.split(":", 1)[1] for key in secret_keys}
    return parse_settings("production", raw, present | {"stripeSecretKey", "stripeWebhookSecret"})


def test_a_stripe_key_turns_premium_on_with_its_prices_and_checkout_urls_on_the_site() -> None:
    secrets = _with(stripe_secret_key="sk_live_x", stripe_webhook_secret="whsec_1")
    assert _added(_stripe_settings(), secrets) == {
        "FEATURE_PREMIUM_SUBSCRIPTIONS": "true",
        "STRIPE_SECRET_KEY": "sk_live_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_1",
        "STRIPE_PRO_MONTHLY_PRICE_ID": STRIPE_PRICES["stripeProMonthlyPriceId"],
        "STRIPE_PRO_YEARLY_PRICE_ID": STRIPE_PRICES["stripeProYearlyPriceId"],
        # Not the app's defaults (localhost:5173): checkout returns to this stack's site.
        "STRIPE_SUCCESS_URL": "https://clipper.example.com/subscription/success",
        "STRIPE_CANCEL_URL": "https://clipper.example.com/subscription/cancel",
    }


def test_extra_stripe_webhook_secrets_are_written_for_a_rotation() -> None:
    secrets = _with(
        stripe_secret_key="sk_live_x",
        stripe_webhook_secret="whsec_new",
        stripe_webhook_secret_alt="whsec_old",
        stripe_webhook_secrets="whsec_a,whsec_b",
    )
    env = backend_env(_stripe_settings(), DB, secrets)
    assert env["STRIPE_WEBHOOK_SECRET_ALT"] == "whsec_old"
    assert env["STRIPE_WEBHOOK_SECRETS"] == "whsec_a,whsec_b"


def test_opensearch_needs_its_url_and_brings_user_password_and_certificate_checks() -> None:
    secrets = _with(opensearch_password="os-pass")
    without_url = backend_env(settings_for("staging"), DB, secrets)
    assert not set(without_url) & OPTIONAL_INTEGRATIONS
    settings = settings_for(
        "staging", opensearchUrl="https://search.internal:9200", opensearchUsername="clipper"
    )
    assert _added(settings, secrets) == {
        "OPENSEARCH_URL": "https://search.internal:9200",
        "OPENSEARCH_USERNAME": "clipper",
        "OPENSEARCH_PASSWORD": "os-pass",
        # The app defaults to skipping certificate checks.
        "OPENSEARCH_INSECURE_SKIP_VERIFY": "false",
    }


def test_the_renderer_lists_every_key_it_can_write() -> None:
    secrets = _with(
        stripe_secret_key="sk", stripe_webhook_secret="w", stripe_webhook_secret_alt="a",
        stripe_webhook_secrets="b", sendgrid_api_key="SG", sendgrid_webhook_public_key="k",
        openai_api_key="o", sentry_dsn="https://k@s.io/1", opensearch_password="p",
    )  # fmt: skip
    settings = _stripe_settings(opensearchUrl="https://s:9200", opensearchUsername="u")
    env = backend_env(settings, DB, secrets)
    assert set(env) == set(BACKEND_REQUIRED_KEYS) | set(BACKEND_SWITCH_KEYS) | set(
        BACKEND_OPTIONAL_KEYS
    )
    assert set(BACKEND_OPTIONAL_KEYS) == OPTIONAL_INTEGRATIONS


def test_db_admin_env_is_libpq_variables_with_tls_required() -> None:
    admin = PostgresLoginValues("db.example", 25060, "doadmin", "admin-pass", "clipper")
    assert db_admin_env(admin) == {
        "PGHOST": "db.example",
        "PGPORT": "25060",
        "PGUSER": "doadmin",
        "PGPASSWORD": "admin-pass",
        "PGDATABASE": "clipper",
        "PGSSLMODE": "require",
    }


def test_plain_values_are_written_bare_and_tricky_ones_quoted() -> None:
    text = render_env_file(TRICKY, "test")
    lines = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines["PLAIN"] == TRICKY["PLAIN"]
    assert lines["EQUALS"] == "a=b==c="
    assert lines["EMPTY"] == ""
    for key in ("PEM_KEY", "QUOTES", "DOLLAR", "SPACES", "BACKSLASH", "HASH"):
        assert lines[key].startswith('"') and lines[key].endswith('"'), key
    # A multi-line key stays on one line of the file.
    assert len(text.splitlines()) == 3 + len(TRICKY)


def test_tricky_values_round_trip_through_the_contract_format() -> None:
    assert _parse_like_dotenv(render_env_file(TRICKY, "test")) == TRICKY


def test_a_value_with_a_carriage_return_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as err:
        render_env_file({"JWT_PRIVATE_KEY": "line1\r\nsecret-material"}, "test")
    assert "JWT_PRIVATE_KEY" in str(err.value)
    assert "secret-material" not in str(err.value)


def test_a_bad_variable_name_is_refused() -> None:
    with pytest.raises(ValueError):
        render_env_file({"lower-case": "x"}, "test")


def _script_parser() -> Callable[[str], dict[str, str]]:
    from clipper.envfile import parse_env_text  # the host package's parser (hostscripts/clipper)

    return parse_env_text


def test_the_host_script_parses_what_the_renderer_writes() -> None:
    parse = _script_parser()
    assert parse(render_env_file(TRICKY, "round trip")) == TRICKY


def test_the_host_script_reads_a_whole_backend_env_file() -> None:
    env = backend_env(settings_for("production"), DB, SECRETS)
    assert _script_parser()(render_env_file(env, "backend")) == env


# ------------------------------------------------------------------ integration settings


def _integration_problems(secrets: set[str], **overrides: str) -> list[str]:
    """What parse_settings refuses for staging with these secret keys set."""
    config, secret_keys = stack_config("staging", overrides=overrides)
    raw = {key.split(":", 1)[1]: value for key, value in config.items()}
    present = {key.split(":", 1)[1] for key in secret_keys} | secrets
    try:
        parse_settings("staging", raw, present)
    except SettingsError as err:
        return err.problems
    return []


def test_sendgrid_without_its_webhook_signature_key_is_refused() -> None:
    (problem,) = _integration_problems({"sendgridApiKey"})
    assert problem.startswith(
        "clipper-infra:sendgridApiKey is set without sendgridWebhookPublicKey"
    )
    assert "unsigned posts to /api/v1/webhooks/sendgrid" in problem
    assert "pulumi config set --secret sendgridWebhookPublicKey" in problem
    assert _integration_problems({"sendgridApiKey", "sendgridWebhookPublicKey"}) == []


def test_stripe_needs_its_webhook_secret_and_both_price_ids() -> None:
    problems = _integration_problems({"stripeSecretKey"})
    assert any("stripeSecretKey is set without stripeWebhookSecret" in p for p in problems)
    assert any(p.startswith('clipper-infra:stripeProMonthlyPriceId = ""') for p in problems)
    assert any(p.startswith('clipper-infra:stripeProYearlyPriceId = ""') for p in problems)
    assert _integration_problems({"stripeSecretKey", "stripeWebhookSecret"}, **STRIPE_PRICES) == []


def test_stripe_price_ids_or_extra_webhook_secrets_without_stripe_are_refused() -> None:
    (price,) = _integration_problems(set(), stripeProMonthlyPriceId="price_1Monthly0000")
    assert "needs the Stripe secret key" in price
    (alt,) = _integration_problems({"stripeWebhookSecretAlt"})
    assert alt.startswith("clipper-infra:stripeWebhookSecretAlt is an extra Stripe signing secret")
    (bad,) = _integration_problems(set(), stripeProYearlyPriceId="prod_123")
    assert 'stripeProYearlyPriceId = "prod_123": allowed: empty or a Stripe price id' in bad


def test_the_program_writes_the_new_secrets_into_the_hosts_env_file() -> None:
    secrets = {
        **default_secrets("staging"),
        "sendgridApiKey": "SG.program-test-key",
        "sendgridWebhookPublicKey": "program-test-webhook-public-key",
        "stripeSecretKey": "sk_program_test",
        "stripeWebhookSecret": "whsec_program_primary",
        "stripeWebhookSecretAlt": "whsec_program_previous",
    }
    run = custom_run("staging", overrides=STRIPE_PRICES, secrets=secrets)
    stdin = json.loads(plain(run.named("staging-release-app-1-env-install").inputs["stdin"]))
    (backend,) = [f["content"] for f in stdin["files"] if f["path"].endswith("/backend.env")]
    values = _parse_like_dotenv(backend)
    assert values["SENDGRID_WEBHOOK_PUBLIC_KEY"] == "program-test-webhook-public-key"
    assert values["STRIPE_WEBHOOK_SECRET_ALT"] == "whsec_program_previous"
    assert (values["EMAIL_ENABLED"], values["FEATURE_PREMIUM_SUBSCRIPTIONS"]) == ("true", "true")
    assert (values["SENTRY_ENABLED"], values["EMBEDDING_ENABLED"]) == ("false", "false")
