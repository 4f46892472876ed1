"""The env files a release reads: what the backend reads, and the admin's direct login.

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
# Optional integrations: each key is written only when its value is set.
BACKEND_OPTIONAL_KEYS: tuple[str, ...] = (
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "SENDGRID_API_KEY",
    "OPENAI_API_KEY",
    "SENTRY_DSN",
    "OPENSEARCH_URL",
    "OPENSEARCH_USERNAME",
    "OPENSEARCH_PASSWORD",
)
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
    optional: dict[str, str | None] = {
        "STRIPE_SECRET_KEY": secrets.stripe_secret_key,
        "STRIPE_WEBHOOK_SECRET": secrets.stripe_webhook_secret,
        "SENDGRID_API_KEY": secrets.sendgrid_api_key,
        "OPENAI_API_KEY": secrets.openai_api_key,
        "SENTRY_DSN": secrets.sentry_dsn,
        # Without OpenSearch the app searches with SQL; the URL and user are plain settings.
        "OPENSEARCH_URL": settings.opensearch_url or None,
        "OPENSEARCH_USERNAME": settings.opensearch_username or None,
        "OPENSEARCH_PASSWORD": secrets.opensearch_password if settings.opensearch_url else None,
    }
    values.update({key: value for key, value in optional.items() if value})
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
