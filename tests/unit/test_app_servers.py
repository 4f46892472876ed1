"""The app droplets under mocks: shape, tags, keys, backups, user-data and its replacement rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.host.files import role_of, role_tag
from components.host.layout import VALKEY_CA_FILE
from components.offline.mocks import FAKE_CA_PEM, Registration
from components.offline.runner import ProgramRun
from components.renderers.valkey_tunnel import TUNNEL_CONFIG_FILE
from components.settings import SECRET_KEYS
from tests.support.program import STRIPE_PRICES, custom_run, of_role, plain, stack_run

DROPLET = "digitalocean:index/droplet:Droplet"
CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
STACKS = ["staging", "production"]

# Distinctive values for every secret setting (new secret keys are covered automatically): none
# may reach user-data.
PLANTED_SECRETS = {key: f"planted-{key}-0b5e7c1d" for key in SECRET_KEYS} | {
    "jwtPrivateKey": "-----BEGIN PRIVATE KEY-----\nplanted-jwt-private\n-----END PRIVATE KEY-----",
    "jwtPublicKey": "-----BEGIN PUBLIC KEY-----\nplanted-jwt-public\n-----END PUBLIC KEY-----",
    "sentryDsn": "https://planted-sentry-5b7e@sentry.example.com/1",
    "alertSlackWebhookUrl": "https://hooks.slack.example.com/planted-slack-6e8f",
}


def _droplets(run: ProgramRun) -> list[Registration]:
    return of_role(run, DROPLET)


def _user_data(droplet: Registration) -> dict[str, Any]:
    text = plain(droplet.inputs["userData"])
    assert text.startswith("#cloud-config\n")
    return dict(yaml.safe_load(text))


def _files(droplet: Registration) -> dict[str, str]:
    return {f["path"]: f["content"] for f in _user_data(droplet)["write_files"]}


@pytest.mark.parametrize(("stack", "count"), [("staging", 1), ("production", 2)])
def test_app_count_droplets_named_after_the_environment(stack: str, count: int) -> None:
    names = sorted(d.inputs["name"] for d in _droplets(stack_run(stack)))
    assert names == [f"clipper-{stack}-app-{n}" for n in range(1, count + 1)]


def test_three_droplets_when_the_setting_asks_for_three() -> None:
    run = custom_run("production", overrides={"appCount": "3"})
    assert len(_droplets(run)) == 3


@pytest.mark.parametrize("stack", STACKS)
def test_droplets_run_ubuntu_lts_in_the_vpc_with_monitoring_and_settings_keys(stack: str) -> None:
    run = stack_run(stack)
    for droplet in _droplets(run):
        assert droplet.inputs["image"] == "ubuntu-24-04-x64"
        assert droplet.inputs["region"] == "nyc3"
        assert droplet.inputs["vpcUuid"] == run.outputs["vpcId"].value
        assert droplet.inputs["monitoring"] is True
        assert droplet.inputs["ipv6"] is True
        assert droplet.inputs["sshKeys"] == ["3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"]
        assert (
            droplet.inputs["size"] == {"staging": "s-2vcpu-4gb", "production": "s-4vcpu-8gb"}[stack]
        )


def test_ipv6_follows_the_setting() -> None:
    run = custom_run("staging", overrides={"appIpv6": "false"})
    assert _droplets(run)[0].inputs["ipv6"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_droplets_carry_the_app_role_tag_and_the_environment_tag(stack: str) -> None:
    for droplet in _droplets(stack_run(stack)):
        tags = plain(droplet.inputs["tags"])
        assert tags == [role_tag(stack, "app"), f"clipper-{stack}"]
        assert role_of(tags) == "app"


def test_production_droplets_are_backed_up_daily_at_the_settings_hour() -> None:
    for droplet in _droplets(stack_run("production")):
        assert droplet.inputs["backups"] is True
        assert droplet.inputs["backupPolicy"] == {"plan": "daily", "hour": 4}


def test_a_weekly_backup_policy_names_its_weekday() -> None:
    run = custom_run(
        "staging",
        overrides={"appBackups": "true", "appBackupPlan": "weekly", "appBackupWeekday": "WED"},
    )
    policy = _droplets(run)[0].inputs["backupPolicy"]
    assert policy == {"plan": "weekly", "weekday": "WED", "hour": 4}


def test_staging_droplets_have_no_backups() -> None:
    droplet = _droplets(stack_run("staging"))[0]
    assert droplet.inputs["backups"] is False
    assert "backupPolicy" not in droplet.inputs


# ---------------------------------------------------------------- user-data changes


def test_production_droplets_ignore_changes_of_what_they_were_built_from() -> None:
    # A cloud-init (or image, or account key) change must not silently replace every production
    # droplet at once; operators roll them one at a time (README).
    for droplet in _droplets(stack_run("production")):
        assert droplet.ignore_changes == ("userData", "image", "sshKeys")


def test_staging_droplets_are_replaced_when_their_user_data_changes() -> None:
    for droplet in _droplets(stack_run("staging")):
        assert "userData" not in droplet.ignore_changes
        # user_data is a replace-only property of a droplet: no ignore means replacement.


def test_the_replacement_rule_follows_the_setting_not_the_stack() -> None:
    staging = custom_run("staging", overrides={"appReplaceOnUserDataChange": "false"})
    production = custom_run("production", overrides={"appReplaceOnUserDataChange": "true"})
    assert _droplets(staging)[0].ignore_changes == ("userData", "image", "sshKeys")
    assert all(d.ignore_changes == () for d in _droplets(production))


def test_every_droplet_of_a_stack_gets_the_same_user_data() -> None:
    droplets = _droplets(stack_run("production"))
    assert len({plain(d.inputs["userData"]) for d in droplets}) == 1


# ---------------------------------------------------------------- what user-data holds


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_appears_in_any_droplet_user_data(stack: str) -> None:
    secrets = dict(PLANTED_SECRETS)
    run = custom_run(
        stack, overrides={"alertSlackChannel": "#ops", **STRIPE_PRICES}, secrets=secrets
    )
    # Passwords the mocks hand out for the clusters, users and pools, and the deploy private key.
    generated = [
        str(plain(reg.outputs[key]))
        for reg in run.registrations
        for key in ("password", "uri", "privateUri", "privateKeyOpenssh", "privateKeyPem", "result")
        if key in reg.outputs
    ]
    assert any("mock-pg-admin-password" in g for g in generated)
    assert any("OPENSSH PRIVATE KEY" in g for g in generated)
    for droplet in run.of_type(DROPLET):  # every role's droplets, not only the app hosts
        user_data = plain(droplet.inputs["userData"])
        for name, value in secrets.items():
            assert value not in user_data, f"{name} is in {droplet.name}'s user-data"
            for line in value.splitlines():
                assert line not in user_data or line.startswith("-----"), name
        for value in generated:
            assert value not in user_data
        assert "PRIVATE KEY" not in user_data


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_is_not_a_secret_so_preview_shows_its_changes(stack: str) -> None:
    from tests.support.program import is_secret

    for droplet in _droplets(stack_run(stack)):
        assert not is_secret(droplet.inputs["userData"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_deploy_user_trusts_the_deploy_key_and_the_admin_keys(stack: str) -> None:
    run = stack_run(stack)
    key = run.named(f"{stack}-deploy-key-key")
    assert key.type == PRIVATE_KEY
    assert key.inputs["algorithm"] == "ED25519"
    deploy_public = str(key.outputs["publicKeyOpenssh"]).strip()
    for droplet in _droplets(run):
        (user,) = _user_data(droplet)["users"]
        assert user["name"] == "deploy"
        assert user["ssh_authorized_keys"][0] == deploy_public
        assert len(user["ssh_authorized_keys"]) == 3  # the deploy key + two operators


@pytest.mark.parametrize("stack", STACKS)
def test_the_tunnel_connects_to_the_cache_private_host_and_trusts_its_ca(stack: str) -> None:
    run = stack_run(stack)
    (cache,) = [c for c in run.of_type(CLUSTER) if c.inputs["engine"] == "valkey"]
    private_host, port = cache.outputs["privateHost"], cache.outputs["port"]
    files = _files(_droplets(run)[0])
    config = files[TUNNEL_CONFIG_FILE]
    assert f"connect = {private_host}:{port}\n" in config
    assert f"checkHost = {private_host}\n" in config
    assert f"CAfile = {VALKEY_CA_FILE}\n" in config
    assert files[VALKEY_CA_FILE] == FAKE_CA_PEM
    assert "accept = 127.0.0.1:6380\n" in config


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_fits_digitalocean_limit(stack: str) -> None:
    for droplet in _droplets(stack_run(stack)):
        assert len(plain(droplet.inputs["userData"]).encode()) < 64 * 1024


def test_the_docker_daemon_config_in_user_data_is_json() -> None:
    files = _files(_droplets(stack_run("staging"))[0])
    daemon = json.loads(files["/etc/docker/daemon.json"])
    assert daemon["log-opts"] == {"max-size": "20m", "max-file": "5"}
    assert daemon["live-restore"] is True
