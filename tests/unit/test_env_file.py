"""The env files: exactly the variables the backend reads, in a format the host script parses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from components.renderers.env_file import (
    BackendSecretValues,
    PostgresLoginValues,
    backend_env,
    db_admin_env,
    render_env_file,
)
from tests.support.program import settings_for

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
}  # fmt: skip
OPTIONAL_INTEGRATIONS = {
    "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SENDGRID_API_KEY", "OPENAI_API_KEY",
    "SENTRY_DSN", "OPENSEARCH_URL", "OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD",
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


def test_optional_integrations_appear_only_when_their_secret_is_set() -> None:
    settings = settings_for("staging")
    with_stripe = BackendSecretValues(
        **{**SECRETS.__dict__, "stripe_secret_key": "sk_live_x", "sentry_dsn": "https://k@s.io/1"}
    )
    env = backend_env(settings, DB, with_stripe)
    assert set(env) - APP_READS == {"STRIPE_SECRET_KEY", "SENTRY_DSN"}
    assert env["STRIPE_SECRET_KEY"] == "sk_live_x"


def test_opensearch_needs_its_url_and_brings_user_and_password() -> None:
    secrets = BackendSecretValues(**{**SECRETS.__dict__, "opensearch_password": "os-pass"})
    without_url = backend_env(settings_for("staging"), DB, secrets)
    assert not set(without_url) & OPTIONAL_INTEGRATIONS
    settings = settings_for(
        "staging", opensearchUrl="https://search.internal:9200", opensearchUsername="clipper"
    )
    env = backend_env(settings, DB, secrets)
    assert {k: env[k] for k in set(env) - APP_READS} == {
        "OPENSEARCH_URL": "https://search.internal:9200",
        "OPENSEARCH_USERNAME": "clipper",
        "OPENSEARCH_PASSWORD": "os-pass",
    }


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
