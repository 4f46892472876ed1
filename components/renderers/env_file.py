"""The env files a release reads: what the backend reads, and the admin's direct login.

The backend's file covers everything the app's config/config.go reads that this platform
decides (../shared/clipper-app.md, last section): the server (ENVIRONMENT, GIN_MODE, PORT,
BASE_URL), PostgreSQL, Redis through the host's TLS tunnel, the JWT and MFA keys, Twitch OAuth,
the CORS and WebSocket origins, and each optional integration with its on-switch, which the
app defaults to off and which is derived here from whether the integration's secret is set:
`SENTRY_ENABLED` (sentryDsn), `EMAIL_ENABLED` (sendgridApiKey, with the webhook's signature key),
`EMBEDDING_ENABLED` (openaiApiKey), `FEATURE_PREMIUM_SUBSCRIPTIONS` (stripeSecretKey, with the
price ids, the success/cancel URLs on the stack's site and every webhook signing secret), and
OpenSearch with TLS verification on. Not here: `EXPORT_DIR` (a `docker run` argument, with the
exports volume: components/renderers/deploy_config.py) and the defaults the app gets right.

Format (the release contract; `clipper-release` parses exactly this): one `KEY=VALUE` per line,
`#` starts a comment line. A value that holds a newline, `"`, `\\`, `$`, `'`, `#` or leading or
trailing white space is written `KEY="..."`, with `\\\\`, `\\"` and `\\n` as the only escapes
(a dotenv subset). Docker's `--env-file` cannot carry the multi-line JWT keys, so the host
script reads this file itself and hands each value to docker through its environment.

Pure functions: resolved values in, text out. The Pulumi side (components/app_secrets.py) calls
them inside `apply`, so the text stays a Pulumi secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from components.settings import Settings

# Every variable the backend reads (../shared/clipper-app.md, config/config.go), in file order.
BACKEND_REQUIRED_KEYS: tuple[str, ...] = (
    "ENVIRONMENT",
    "GIN_MODE",
    "PORT",
    "BASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_USER",
    "DB_PASSWORD",
    "DB_NAME",
    "DB_SSLMODE",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_DB",
    "JWT_PRIVATE_KEY",
    "JWT_PUBLIC_KEY",
    "MFA_ENCRYPTION_KEY",
    "TWITCH_CLIENT_ID",
    "TWITCH_CLIENT_SECRET",
    "TWITCH_REDIRECT_URI",
    "CORS_ALLOWED_ORIGINS",
    "WEBSOCKET_ALLOWED_ORIGINS",
)
# The integrations' on-switches: always written, "true" exactly when the integration is set up.
BACKEND_SWITCH_KEYS: tuple[str, ...] = (
    "SENTRY_ENABLED",
    "EMAIL_ENABLED",
    "EMBEDDING_ENABLED",
    "FEATURE_PREMIUM_SUBSCRIPTIONS",
)
# Optional integrations: each key is written only when its integration is set up.
BACKEND_OPTIONAL_KEYS: tuple[str, ...] = (
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_WEBHOOK_SECRET_ALT",
    "STRIPE_WEBHOOK_SECRETS",
    "STRIPE_PRO_MONTHLY_PRICE_ID",
    "STRIPE_PRO_YEARLY_PRICE_ID",
    "STRIPE_SUCCESS_URL",
    "STRIPE_CANCEL_URL",
    "SENDGRID_API_KEY",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "OPENAI_API_KEY",
    "SENTRY_DSN",
    "SENTRY_ENVIRONMENT",
    "OPENSEARCH_URL",
    "OPENSEARCH_USERNAME",
    "OPENSEARCH_PASSWORD",
    "OPENSEARCH_INSECURE_SKIP_VERIFY",
)
# Where Stripe's checkout sends the user back (the app's routes; its defaults are localhost).
STRIPE_SUCCESS_PATH = "/subscription/success"
STRIPE_CANCEL_PATH = "/subscription/cancel"
# libpq's own variables: psql on the host reads them to create the extensions and grant the app
# user its rights; clipper-release also takes the cluster's DIRECT address from them (PGHOST,
# PGPORT, PGDATABASE, PGSSLMODE) for golang-migrate, which must not go through the pool.
DB_ADMIN_KEYS: tuple[str, ...] = (
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
)

# The backend listens on 8080 in its image; the release passes each colour's port on top.
BACKEND_CONTAINER_PORT = 8080

_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_NEEDS_QUOTES = re.compile(r"[\n\"\\$'#]|^\s|\s$")
# Control characters the format cannot carry (newlines are escaped, tabs are kept as they are).
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class PostgresLoginValues:
    """A resolved PostgreSQL login: where, as whom, which database."""

    host: str
    port: int
    user: str
    password: str
    database: str


@dataclass(frozen=True)
class BackendSecretValues:
    """The backend's resolved secret values; optional integrations are None when unset."""

    redis_password: str
    jwt_private_key: str
    jwt_public_key: str
    mfa_encryption_key: str
    twitch_client_secret: str
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    sendgrid_api_key: str | None = None
    openai_api_key: str | None = None
    sentry_dsn: str | None = None
    opensearch_password: str | None = None
    stripe_webhook_secret_alt: str | None = None
    stripe_webhook_secrets: str | None = None
    sendgrid_webhook_public_key: str | None = None


def _flag(on: object) -> str:
    return "true" if on else "false"


def _integrations(settings: Settings, secrets: BackendSecretValues) -> dict[str, str | None]:
    """Each optional integration's variables; None where it is not set up (not written)."""
    stripe = bool(secrets.stripe_secret_key)
    email = bool(secrets.sendgrid_api_key)
    sentry = bool(secrets.sentry_dsn)
    opensearch = bool(settings.opensearch_url)

    def when(on: bool, value: str | None) -> str | None:
        return value if on else None

    return {
        "STRIPE_SECRET_KEY": when(stripe, secrets.stripe_secret_key),
        "STRIPE_WEBHOOK_SECRET": when(stripe, secrets.stripe_webhook_secret),
        # Extra signing secrets let a rotation overlap: the app accepts any of them.
        "STRIPE_WEBHOOK_SECRET_ALT": when(stripe, secrets.stripe_webhook_secret_alt),
        "STRIPE_WEBHOOK_SECRETS": when(stripe, secrets.stripe_webhook_secrets),
        "STRIPE_PRO_MONTHLY_PRICE_ID": when(stripe, settings.stripe_pro_monthly_price_id),
        "STRIPE_PRO_YEARLY_PRICE_ID": when(stripe, settings.stripe_pro_yearly_price_id),
        "STRIPE_SUCCESS_URL": when(stripe, settings.site_url + STRIPE_SUCCESS_PATH),
        "STRIPE_CANCEL_URL": when(stripe, settings.site_url + STRIPE_CANCEL_PATH),
        "SENDGRID_API_KEY": when(email, secrets.sendgrid_api_key),
        "SENDGRID_WEBHOOK_PUBLIC_KEY": when(email, secrets.sendgrid_webhook_public_key),
        "OPENAI_API_KEY": secrets.openai_api_key,
        "SENTRY_DSN": when(sentry, secrets.sentry_dsn),
        "SENTRY_ENVIRONMENT": when(sentry, settings.environment),
        # Without OpenSearch the app searches with SQL; the URL and user are plain settings.
        "OPENSEARCH_URL": when(opensearch, settings.opensearch_url),
        "OPENSEARCH_USERNAME": when(opensearch, settings.opensearch_username),
        "OPENSEARCH_PASSWORD": when(opensearch, secrets.opensearch_password),
        # The app skips certificate checks unless told otherwise.
        "OPENSEARCH_INSECURE_SKIP_VERIFY": when(opensearch, "false"),
    }


def backend_env(
    settings: Settings, database: PostgresLoginValues, secrets: BackendSecretValues
) -> dict[str, str]:
    """Exactly the variables the backend reads, for this stack (insertion order = file order).

    The backend has no TLS option for Redis, so it talks plain Redis to the host's TLS tunnel
    on loopback (`cacheTunnelPort`); PostgreSQL is reached over TLS (`DB_SSLMODE=require`).
    """
    values: dict[str, str] = {
        "ENVIRONMENT": settings.environment,
        "GIN_MODE": "release",
        "PORT": str(BACKEND_CONTAINER_PORT),
        "BASE_URL": settings.site_url,
        "DB_HOST": database.host,
        "DB_PORT": str(database.port),
        "DB_USER": database.user,
        "DB_PASSWORD": database.password,
        "DB_NAME": database.database,
        "DB_SSLMODE": "require",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(settings.cache_tunnel_port),
        "REDIS_PASSWORD": secrets.redis_password,
        "REDIS_DB": "0",
        "JWT_PRIVATE_KEY": secrets.jwt_private_key,
        "JWT_PUBLIC_KEY": secrets.jwt_public_key,
        "MFA_ENCRYPTION_KEY": secrets.mfa_encryption_key,
        "TWITCH_CLIENT_ID": settings.twitch_client_id,
        "TWITCH_CLIENT_SECRET": secrets.twitch_client_secret,
        "TWITCH_REDIRECT_URI": settings.twitch_redirect_uri,
        "CORS_ALLOWED_ORIGINS": ",".join(settings.effective_cors_origins),
        "WEBSOCKET_ALLOWED_ORIGINS": ",".join(settings.effective_websocket_origins),
    }
    values.update(
        {
            "SENTRY_ENABLED": _flag(secrets.sentry_dsn),
            "EMAIL_ENABLED": _flag(secrets.sendgrid_api_key),
            "EMBEDDING_ENABLED": _flag(secrets.openai_api_key),
            "FEATURE_PREMIUM_SUBSCRIPTIONS": _flag(secrets.stripe_secret_key),
        }
    )
    values.update({key: value for key, value in _integrations(settings, secrets).items() if value})
    return values


def db_admin_env(admin: PostgresLoginValues) -> dict[str, str]:
    """The admin login to the app's database over the cluster's direct connection (never the
    pool), as libpq variables: for `CREATE EXTENSION` and the grants, and the address the
    release's migrations connect to (as the app's user)."""
    return {
        "PGHOST": admin.host,
        "PGPORT": str(admin.port),
        "PGUSER": admin.user,
        "PGPASSWORD": admin.password,
        "PGDATABASE": admin.database,
        "PGSSLMODE": "require",
    }


def _format_value(key: str, value: str) -> str:
    bad = _FORBIDDEN.search(value)
    if bad:
        # Name the key, never the value: this message may reach a log.
        raise ValueError(
            f"{key}: the value holds control character {bad.group()!r}, which an env file"
            " cannot carry (a pasted key with Windows line ends? use \\n line ends)"
        )
    if not _NEEDS_QUOTES.search(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render_env_file(values: Mapping[str, str], title: str) -> str:
    """The env file text for `values` (in their order), under a comment naming its purpose."""
    lines = [
        f"# {title}",
        "# Written over SSH by the Pulumi program (clipper-infra), mode 0600: do not edit here,",
        "# change the stack's config and run `pulumi up`.",
    ]
    for key, value in values.items():
        if not _KEY.match(key):
            raise ValueError(f"not an environment variable name: {key!r}")
        lines.append(f"{key}={_format_value(key, value)}")
    return "\n".join(lines) + "\n"
