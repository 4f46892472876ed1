"""The app's generated secrets and its env files, as Pulumi secrets.

The MFA encryption key (32 random bytes, base64) comes from pulumi-random; the JWT key pair from
pulumi-tls (RSA 2048) unless the stack sets both `jwtPrivateKey` and `jwtPublicKey`. With the
database and cache logins they make the two env files a release writes over SSH: the backend's
and the admin login that creates the PostgreSQL extensions. Both texts, and their hash, stay
Pulumi secrets: they are built inside `apply` from secret values and wrapped again to be sure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from components.renames import formerly
from components.renderers.env_file import (
    BackendSecretValues,
    PostgresLoginValues,
    backend_env,
    db_admin_env,
    render_env_file,
)
from components.settings import Secrets, Settings


@dataclass(frozen=True)
class PostgresLogin:
    """Where and as whom to reach PostgreSQL (outputs of the database component)."""

    host: pulumi.Input[str]
    port: pulumi.Input[int]
    user: pulumi.Input[str]
    password: pulumi.Input[str]
    database: pulumi.Input[str]


@dataclass(frozen=True)
class AppSecretsArgs:
    """The stack's settings and secrets, and the logins the app and the release use."""

    settings: Settings
    secrets: Secrets
    # What the backend connects with (the session pool or the cluster, per `dbConnection`).
    app_database: PostgresLogin
    # The cluster's admin, in the app's database, over the DIRECT connection: extensions and
    # grants need the admin on a managed cluster, and migrations connect to this address too.
    admin_database: PostgresLogin
    cache_password: pulumi.Input[str]


def _login(login: PostgresLogin) -> pulumi.Output[PostgresLoginValues]:
    return pulumi.Output.all(
        login.host, login.port, login.user, login.password, login.database
    ).apply(lambda v: PostgresLoginValues(str(v[0]), int(v[1]), str(v[2]), str(v[3]), str(v[4])))


def _unix_line_ends(value: pulumi.Output[str]) -> pulumi.Output[str]:
    # A PEM pasted on Windows carries CR LF; the key is the same with LF, and env files need it.
    return value.apply(lambda text: text.replace("\r\n", "\n"))


def _sha256(*texts: str) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


class AppSecrets(pulumi.ComponentResource):
    """Generated app secrets and the env files built from them (all secret outputs)."""

    backend_env_file: pulumi.Output[str]
    db_admin_env_file: pulumi.Output[str]
    env_sha256: pulumi.Output[str]
    jwt_public_key: pulumi.Output[str]

    def __init__(
        self, name: str, args: AppSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "clipper:app_secrets:AppSecrets",
            name,
            None,
            formerly("clipper:secrets:AppSecrets", opts),
        )
        settings, secrets = args.settings, args.secrets

        # The app encrypts users' MFA secrets with this key: losing it locks them out, so it is
        # protected whenever the database (the data it unlocks) is.
        mfa_key = random.RandomBytes(
            f"{name}-mfa-key",
            length=32,
            opts=pulumi.ResourceOptions(parent=self, protect=settings.db_protect),
        )
        jwt_private, jwt_public = self._jwt_key_pair(name, secrets)
        secret_values = _backend_secret_values(args, jwt_private, jwt_public, mfa_key.base64)

        backend_text = pulumi.Output.all(_login(args.app_database), secret_values).apply(
            lambda v: render_env_file(
                backend_env(settings, v[0], v[1]),
                "Clipper backend environment: exactly what the backend reads.",
            )
        )
        admin_text = _login(args.admin_database).apply(
            lambda login: render_env_file(
                db_admin_env(login),
                "PostgreSQL admin login: clipper-release creates the extensions with it.",
            )
        )
        self.backend_env_file = pulumi.Output.secret(backend_text)
        self.db_admin_env_file = pulumi.Output.secret(admin_text)
        # A change of either file must roll the app: the deploy's trigger carries this hash.
        self.env_sha256 = pulumi.Output.secret(
            pulumi.Output.all(backend_text, admin_text).apply(lambda t: _sha256(t[0], t[1]))
        )
        self.jwt_public_key = jwt_public
        self.register_outputs(
            {
                "backend_env_file": self.backend_env_file,
                "db_admin_env_file": self.db_admin_env_file,
                "env_sha256": self.env_sha256,
            }
        )

    def _jwt_key_pair(
        self, name: str, secrets: Secrets
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The stack's own PEM pair when it sets both halves, else a generated RSA 2048 key."""
        if secrets.jwt_private_key is not None and secrets.jwt_public_key is not None:
            return _unix_line_ends(secrets.jwt_private_key), _unix_line_ends(secrets.jwt_public_key)
        jwt_key = tls.PrivateKey(
            f"{name}-jwt-key",
            algorithm="RSA",
            rsa_bits=2048,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return jwt_key.private_key_pem, jwt_key.public_key_pem


def _optional(value: pulumi.Output[str] | None) -> pulumi.Output[Any]:
    return value if value is not None else pulumi.Output.from_input(None)


def _backend_secret_values(
    args: AppSecretsArgs,
    jwt_private: pulumi.Output[str],
    jwt_public: pulumi.Output[str],
    mfa_key: pulumi.Output[str],
) -> pulumi.Output[BackendSecretValues]:
    """Every secret the backend reads, resolved together (unset optional ones as None)."""
    secrets = args.secrets
    return pulumi.Output.all(
        redis_password=args.cache_password,
        jwt_private_key=jwt_private,
        jwt_public_key=jwt_public,
        mfa_encryption_key=mfa_key,
        twitch_client_secret=secrets.twitch_client_secret,
        stripe_secret_key=_optional(secrets.stripe_secret_key),
        stripe_webhook_secret=_optional(secrets.stripe_webhook_secret),
        sendgrid_api_key=_optional(secrets.sendgrid_api_key),
        openai_api_key=_optional(secrets.openai_api_key),
        sentry_dsn=_optional(secrets.sentry_dsn),
        opensearch_password=_optional(secrets.opensearch_password),
        stripe_webhook_secret_alt=_optional(secrets.stripe_webhook_secret_alt),
        stripe_webhook_secrets=_optional(secrets.stripe_webhook_secrets),
        sendgrid_webhook_public_key=_optional(secrets.sendgrid_webhook_public_key),
    ).apply(lambda values: BackendSecretValues(**values))
