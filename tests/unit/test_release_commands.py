"""The release's remote commands under mocks: order, triggers, and secrets kept off the wire.

pulumi-command re-runs a command when its inputs change (an update runs `create` again) and
replaces it when a trigger changes (which runs `create` too). So the tests pin down: which
commands exist per host and what each waits for; that the deploy's trigger moves with the
images and the env files and with nothing else; and that no secret is ever part of a command
line, an environment or a plain output, while the env files' stdin is a secret.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clipper.envfile import parse_env_text
from clipper.migrations import migrate_login

from components.database import APP_DATABASE, APP_USER, POOL_NAME
from components.host import layout as host_layout
from components.host.files import role_of
from components.host.remote_files import HOSTSCRIPTS_DIR as HOSTSCRIPTS
from components.host.remote_files import host_package_files, install_command
from components.offline.render import host_files
from components.offline.runner import ProgramRun
from tests.support.program import (
    STRIPE_PRICES,
    contains_text,
    custom_run,
    default_secrets,
    is_secret,
    plain,
    stack_run,
)

COMMAND = "command:remote:Command"
REMOTE_FILES = "clipper:host:RemoteFiles"
STACKS = ["staging", "production"]

# Test values for every secret setting, long and recognisable, so a leak cannot hide.
TEST_SECRETS = {
    "twitchClientSecret": "test-twitch-client-secret-0123456789",
    "stripeSecretKey": "sk_test_stripe_secret_key_0123456789",
    "stripeWebhookSecret": "whsec_test_stripe_webhook_0123456789",
    "sendgridApiKey": "SG.test-sendgrid-api-key-0123456789",
    "sendgridWebhookPublicKey": "test-sendgrid-webhook-public-key-0123456789",
    "openaiApiKey": "sk-test-openai-api-key-0123456789",
    "sentryDsn": "https://publickey0123456789@o1.ingest.sentry.io/42",
    "alertSlackWebhookUrl": "https://hooks.slack.com/services/T000/B000/testtesttest",
}


def _staging(overrides: dict[str, Any] | None = None, **secrets: str) -> ProgramRun:
    secrets = {**default_secrets("staging", overrides), **TEST_SECRETS, **secrets}
    overrides = {**STRIPE_PRICES, **(overrides or {})}  # Stripe needs its plans' price ids
    return custom_run("staging", overrides=overrides, secrets=secrets)


@pytest.fixture(scope="module")
def staging_with_secrets() -> ProgramRun:
    return _staging()


def _named(run: ProgramRun, suffix: str) -> list[Any]:
    return [r for r in run.registrations if r.name.endswith(suffix) and "-release-" in r.name]


def _host_names(run: ProgramRun) -> list[str]:
    # staging-release-app-1-deploy -> app-1
    return [r.name.split("-release-")[1].rsplit("-", 1)[0] for r in _named(run, "-deploy")]


def _command(run: ProgramRun, host: str, step: str) -> Any:
    env = run.stack
    if step in ("scripts", "env"):
        return run.named(f"{env}-release-{host}-{step}-install")
    return run.named(f"{env}-release-{host}-{step}")


def _app_droplets(run: ProgramRun) -> list[Any]:
    droplets = run.of_type("digitalocean:index/droplet:Droplet")
    return [d for d in droplets if role_of(list(plain(d.inputs.get("tags")) or [])) == "app"]


def _secret_strings(run: ProgramRun, extra: dict[str, str]) -> set[str]:
    """Every secret value the program holds: config secrets and secret resource outputs."""
    found = {v for v in extra.values() if len(v) >= 8}

    def walk(value: Any, secret: bool) -> None:
        if is_secret(value):
            walk(plain(value), True)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, secret)
        elif isinstance(value, list):
            for item in value:
                walk(item, secret)
        elif secret and isinstance(value, str) and len(value) >= 8:
            found.add(value)

    for reg in run.registrations:
        # Remote commands echo their inputs (the droplet's address inside the secret
        # connection); the secrets they carry come from the resources scanned here.
        if reg.custom and not reg.type.startswith("command:"):
            walk(reg.outputs, False)
    return found


# ------------------------------------------------------------------------------ order


@pytest.mark.parametrize("stack", STACKS)
def test_every_app_host_gets_ready_scripts_env_and_deploy(stack: str) -> None:
    run = stack_run(stack)
    hosts = _host_names(run)
    assert len(hosts) == len(_app_droplets(run)) >= 1
    for host in hosts:
        for step in ("ready", "scripts", "env", "deploy"):
            assert _command(run, host, step).type == COMMAND


@pytest.mark.parametrize("stack", STACKS)
def test_files_wait_for_the_host_and_the_deploy_waits_for_the_files(stack: str) -> None:
    run = stack_run(stack)
    for host in _host_names(run):
        ready, scripts, env, deploy = (
            _command(run, host, step) for step in ("ready", "scripts", "env", "deploy")
        )
        assert ready.urn in scripts.depends_on
        assert ready.urn in env.depends_on
        assert scripts.urn in deploy.depends_on
        assert env.urn in deploy.depends_on


def test_production_rolls_one_host_at_a_time_and_stops_at_the_first_failure() -> None:
    run = stack_run("production")
    hosts = _host_names(run)
    assert hosts == ["app-1", "app-2"]
    first_deploy = _command(run, "app-1", "deploy")
    for step in ("scripts", "env", "deploy"):
        # Nothing on app-2 changes until app-1's deploy has succeeded.
        assert first_deploy.urn in _command(run, "app-2", step).depends_on, step
    assert _command(run, "app-2", "deploy").urn not in first_deploy.depends_on


@pytest.mark.parametrize("stack", STACKS)
def test_deploys_wait_for_the_data_stores_firewalls(stack: str) -> None:
    run = stack_run(stack)
    firewalls = {r.urn for r in run.of_type("digitalocean:index/databaseFirewall:DatabaseFirewall")}
    assert firewalls, "the stack declares no database firewall"
    for deploy in _named(run, "-deploy"):
        assert firewalls <= set(deploy.depends_on)


# ------------------------------------------------------------------------------ connection


@pytest.mark.parametrize("stack", STACKS)
def test_commands_connect_as_deploy_with_the_deploy_key_to_each_droplet(stack: str) -> None:
    run = stack_run(stack)
    key = run.of_type("tls:index/privateKey:PrivateKey")
    deploy_key = next(r for r in key if r.name.endswith("deploy-key-key"))
    addresses = {d.name.rsplit("-", 1)[1]: d.outputs["ipv4Address"] for d in _app_droplets(run)}
    for host in _host_names(run):
        for step in ("ready", "scripts", "env", "deploy"):
            connection = _command(run, host, step).inputs["connection"]
            # The key is secret (the whole connection object carries the marker).
            assert is_secret(connection) or is_secret(connection["privateKey"])
            conn = plain(connection)
            assert conn["user"] == host_layout.DEPLOY_USER
            assert conn["host"] == addresses[host.rsplit("-", 1)[1]]
            assert conn["privateKey"] == plain(deploy_key.outputs["privateKeyOpenssh"])


# ------------------------------------------------------------------------------ secrets


def test_no_secret_appears_in_any_command_line_or_environment(
    staging_with_secrets: ProgramRun,
) -> None:
    run = staging_with_secrets
    secrets = _secret_strings(run, TEST_SECRETS)
    assert any("PRIVATE KEY" in s for s in secrets), "the scan found no generated key"
    commands = run.of_type(COMMAND)
    assert commands
    for reg in commands:
        for field in ("create", "update", "delete", "environment"):
            text = json.dumps(plain(reg.inputs.get(field)))
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{reg.name}.{field} carries a secret"


def test_no_secret_appears_in_a_plain_stack_output(staging_with_secrets: ProgramRun) -> None:
    run = staging_with_secrets
    secrets = _secret_strings(run, TEST_SECRETS)
    for name, out in run.outputs.items():
        if out.secret:
            continue
        text = json.dumps(plain(out.value), default=str)
        assert not [s for s in secrets if s in text], f"output {name} carries a secret"


def test_the_env_files_travel_as_secret_stdin(staging_with_secrets: ProgramRun) -> None:
    run = staging_with_secrets
    env = _command(run, "app-1", "env")
    assert is_secret(env.inputs["stdin"])
    files = json.loads(plain(env.inputs["stdin"]))["files"]
    by_path = {f["path"]: f for f in files}
    assert set(by_path) == {
        host_layout.BACKEND_ENV_FILE,
        host_layout.DB_ADMIN_ENV_FILE,
        host_layout.REGISTRY_DOCKER_CONFIG_FILE,
    }
    assert {f["mode"] for f in files} == {"0600"}
    backend = by_path[host_layout.BACKEND_ENV_FILE]["content"]
    assert "TWITCH_CLIENT_SECRET=test-twitch-client-secret-0123456789" in backend
    assert "STRIPE_SECRET_KEY=sk_test_stripe_secret_key_0123456789" in backend
    # The command itself is a fixed installer that reads the bundle from stdin.
    assert plain(env.inputs["create"]) == install_command()


@pytest.mark.parametrize("connection", ["session-pool", "direct"])
def test_the_env_files_let_migrations_reach_the_cluster_directly_whatever_the_app_uses(
    connection: str,
) -> None:
    run = _staging({"dbConnection": connection})
    stdin = json.loads(plain(_command(run, "app-1", "env").inputs["stdin"]))
    files = {f["path"]: f["content"] for f in stdin["files"]}
    app = parse_env_text(files[host_layout.BACKEND_ENV_FILE])
    admin = parse_env_text(files[host_layout.DB_ADMIN_ENV_FILE])
    (cluster,) = [
        c for c in run.of_type("digitalocean:index/databaseCluster:DatabaseCluster")
        if c.inputs["engine"] == "pg"
    ]  # fmt: skip
    direct = (cluster.outputs["privateHost"], "25060", APP_DATABASE)
    assert (admin["PGHOST"], admin["PGPORT"], admin["PGDATABASE"]) == direct
    if connection == "session-pool":
        (pool,) = run.of_type("digitalocean:index/databaseConnectionPool:DatabaseConnectionPool")
        assert (app["DB_HOST"], app["DB_PORT"], app["DB_NAME"]) == (
            pool.outputs["privateHost"], "25061", POOL_NAME,
        )  # fmt: skip
    else:
        assert (app["DB_HOST"], app["DB_PORT"], app["DB_NAME"]) == direct
    # What clipper-release makes of the two files: the cluster directly, as the app's user.
    login = migrate_login(app, admin)
    assert login.url == f"postgres://{APP_USER}@{direct[0]}:25060/{APP_DATABASE}?sslmode=require"
    assert login.password == app["DB_PASSWORD"]


def test_the_env_files_component_keeps_its_contents_secret(
    staging_with_secrets: ProgramRun,
) -> None:
    run = staging_with_secrets
    component = run.named("staging-release-app-1-env")
    assert component.type == REMOTE_FILES
    files = component.inputs["files"]
    if not is_secret(files):
        for entry in files:
            assert is_secret(entry) or is_secret(entry["content"]), entry["path"]
    assert {f["mode"] for f in plain(files)} == {"0600"}


def test_the_deploy_trigger_is_secret_and_its_command_line_is_fixed(
    staging_with_secrets: ProgramRun,
) -> None:
    deploy = _command(staging_with_secrets, "app-1", "deploy")
    assert plain(deploy.inputs["create"]) == f"sudo -n {host_layout.RELEASE_SCRIPT} deploy"
    triggers = deploy.inputs["triggers"]
    assert is_secret(triggers) or any(is_secret(t) for t in triggers)


def test_the_scripts_bundle_installs_the_host_script_and_its_config_in_plain_text(
    staging_with_secrets: ProgramRun,
) -> None:
    scripts = _command(staging_with_secrets, "app-1", "scripts")
    assert not is_secret(scripts.inputs["stdin"])
    files = {f["path"]: f for f in json.loads(plain(scripts.inputs["stdin"]))["files"]}
    assert files[host_layout.RELEASE_SCRIPT]["mode"] == "0755"
    assert files[host_layout.DEPLOY_CONFIG_FILE]["mode"] == "0644"
    config = json.loads(files[host_layout.DEPLOY_CONFIG_FILE]["content"])
    # Built from the app's source and pushed to the stack's registry, pinned by digest.
    assert config["images"]["backend"].startswith(
        "registry.digitalocean.com/clipper/backend:staging-"
    )
    assert "@sha256:" in config["images"]["backend"]
    # The launcher and the whole host package it imports, as the repository has them.
    package = HOSTSCRIPTS / "clipper"
    for module in package.rglob("*.py"):
        path = f"{host_layout.HOST_PACKAGE_DIR}/clipper/{module.relative_to(package).as_posix()}"
        assert files[path]["content"] == module.read_text() and files[path]["mode"] == "0644"


def test_the_installed_launchers_find_the_package_where_the_bundle_puts_it(
    tmp_path: Path,
) -> None:
    """The host's layout (bin/ beside lib/clipper/), written where the bundle puts it (the
    installer itself refuses paths outside the host's, tests/rendered/test_deploy_sudo.py)."""
    bundled = [(str(tmp_path) + f.path, f.content) for f in host_package_files()]
    for launcher in ("clipper-release", "clipper-backup"):
        source = HOSTSCRIPTS / launcher
        bundled.append((f"{tmp_path}/usr/local/bin/{launcher}", source.read_text()))
    for path, content in bundled:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    for launcher, words in (("clipper-release", "blue-green"), ("clipper-backup", "PostgreSQL")):
        proc = subprocess.run(
            [sys.executable, "-I", f"{tmp_path}/usr/local/bin/{launcher}", "--help"],
            capture_output=True, text=True, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert words in proc.stdout


def test_offline_render_shows_the_release_files_with_their_modes() -> None:
    files = host_files(stack_run("staging"))["app"]
    assert files[host_layout.RELEASE_SCRIPT].mode == "0755"
    assert files[host_layout.BACKEND_ENV_FILE].mode == "0600"
    assert files[host_layout.DB_ADMIN_ENV_FILE].mode == "0600"
    assert "MFA_ENCRYPTION_KEY=" in files[host_layout.BACKEND_ENV_FILE].content


# ------------------------------------------------------------------------------ triggers


def _deploy_triggers(run: ProgramRun) -> list[Any]:
    return [plain(_command(run, h, "deploy").inputs["triggers"]) for h in _host_names(run)]


def _inputs_that_rerun(run: ProgramRun, step: str) -> Any:
    # Everything whose change makes pulumi-command run the command again.
    reg = _command(run, "app-1", step)
    return {k: plain(reg.inputs.get(k)) for k in ("create", "stdin", "triggers", "environment")}


def test_a_new_image_tag_changes_the_deploy_trigger(staging_with_secrets: ProgramRun) -> None:
    changed = _staging({"imageBackend": "ghcr.io/subculture-collective/clipper/backend:v1.5.0"})
    assert _deploy_triggers(changed) != _deploy_triggers(staging_with_secrets)
    # The trigger carries the digest the registry gave the new tag, not the tag alone.
    assert any(
        str(t).startswith("ghcr.io/subculture-collective/clipper/backend:v1.5.0@sha256:")
        for t in _deploy_triggers(changed)[0]
    )


def test_a_rotated_secret_rewrites_the_env_file_and_changes_the_deploy_trigger(
    staging_with_secrets: ProgramRun,
) -> None:
    rotated = _staging(twitchClientSecret="rotated-twitch-secret-9876543210")
    assert _deploy_triggers(rotated) != _deploy_triggers(staging_with_secrets)
    new_stdin = plain(_command(rotated, "app-1", "env").inputs["stdin"])
    assert "rotated-twitch-secret-9876543210" in new_stdin
    # The deploy's command line does not move: only its (secret) trigger does.
    deploy = _command(rotated, "app-1", "deploy")
    old = _command(staging_with_secrets, "app-1", "deploy")
    assert plain(deploy.inputs["create"]) == plain(old.inputs["create"])


def test_an_unrelated_change_leaves_every_release_command_alone(
    staging_with_secrets: ProgramRun,
) -> None:
    unrelated = _staging({"dnsTtl": "600", "alertCpuPercent": "70"})
    for step in ("ready", "scripts", "env", "deploy"):
        assert _inputs_that_rerun(unrelated, step) == _inputs_that_rerun(
            staging_with_secrets, step
        ), step


def test_a_timing_change_reinstalls_the_config_without_a_deploy(
    staging_with_secrets: ProgramRun,
) -> None:
    slower = _staging({"releaseDrainSeconds": "30"})
    assert _inputs_that_rerun(slower, "scripts") != _inputs_that_rerun(
        staging_with_secrets, "scripts"
    )
    assert _deploy_triggers(slower) == _deploy_triggers(staging_with_secrets)


# ------------------------------------------------------------------------------ outputs


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_exports_the_release_images_and_deploy_logs_in_plain_text(stack: str) -> None:
    run = stack_run(stack)
    images = run.outputs["releaseImages"]
    assert not images.secret
    assert "@sha256:" in images.value["backend"]
    logs = run.outputs["releaseDeployLogs"]
    assert set(logs.value) == set(_host_names(run))


def test_the_wait_for_the_host_checks_cloud_init_and_the_ready_marker() -> None:
    ready = plain(_command(stack_run("staging"), "app-1", "ready").inputs["create"])
    assert "cloud-init status --wait" in ready
    assert host_layout.HOST_READY_FILE in ready


def test_plan_shows_no_env_file_content(staging_with_secrets: ProgramRun) -> None:
    from components.offline.plan import plan_json

    text = plan_json(staging_with_secrets)
    assert "test-twitch-client-secret" not in text
    assert not contains_text(json.loads(text), "sk_test_stripe")


# The file installer's tests are in tests/rendered/test_deploy_sudo.py (it is a host file now).


# ------------------------------------------------------------------------------ app secrets


def _backend_env(run: ProgramRun) -> dict[str, str]:
    files = json.loads(plain(_command(run, "app-1", "env").inputs["stdin"]))["files"]
    text = next(f["content"] for f in files if f["path"] == host_layout.BACKEND_ENV_FILE)
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


@pytest.mark.parametrize("stack", STACKS)
def test_the_mfa_key_is_32_random_bytes_kept_as_long_as_the_database(stack: str) -> None:
    run = stack_run(stack)
    mfa = run.named(f"{stack}-app-secrets-mfa-key")
    assert mfa.type == "random:index/randomBytes:RandomBytes"
    assert plain(mfa.inputs["length"]) == 32
    assert is_secret(mfa.outputs["base64"])
    # Losing the key locks every user out of MFA: it lives as long as the data it unlocks.
    assert mfa.protect == (stack == "production")
    key = _backend_env(run)["MFA_ENCRYPTION_KEY"]
    assert len(base64.b64decode(key)) == 32


def test_a_jwt_key_pair_is_generated_when_none_is_set(staging_with_secrets: ProgramRun) -> None:
    key = staging_with_secrets.named("staging-app-secrets-jwt-key")
    assert (plain(key.inputs["algorithm"]), plain(key.inputs["rsaBits"])) == ("RSA", 2048)
    env = _backend_env(staging_with_secrets)
    assert plain(key.outputs["privateKeyPem"]).replace("\n", "\\n") in env["JWT_PRIVATE_KEY"]


def test_jwt_keys_set_in_config_are_used_with_unix_line_ends() -> None:
    private = "-----BEGIN PRIVATE KEY-----\r\nconfigured-private\r\n-----END PRIVATE KEY-----\r\n"
    public = "-----BEGIN PUBLIC KEY-----\r\nconfigured-public\r\n-----END PUBLIC KEY-----\r\n"
    run = _staging(jwtPrivateKey=private, jwtPublicKey=public)
    assert not [r for r in run.registrations if r.name.endswith("app-secrets-jwt-key")]
    env = _backend_env(run)
    assert env["JWT_PRIVATE_KEY"] == '"' + private.replace("\r\n", "\\n") + '"'
    assert env["JWT_PUBLIC_KEY"] == '"' + public.replace("\r\n", "\\n") + '"'
