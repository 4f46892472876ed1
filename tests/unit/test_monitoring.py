"""The monitoring component under Pulumi mocks, for both stacks: the droplet, its volume, its
firewall, the data stores' trust, what travels over SSH (and as secrets), the order of the
remote commands, Alloy on each app host, images by digest, the outputs; and the monitoring
settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.host.files import role_tag
from components.offline.mocks import Registration, mock_registry_digest
from components.offline.runner import ProgramRun, placeholder_secret, stack_config
from components.renderers import monitoring_units as units
from components.settings import PROJECT, SettingsError, parse_settings
from tests.support.monitoring import stack_settings
from tests.support.program import contains_text, custom_run, is_secret, of_role, plain, stack_run

STACKS = ["staging", "production"]
DROPLET = "digitalocean:index/droplet:Droplet"
VOLUME = "digitalocean:index/volume:Volume"
ATTACHMENT = "digitalocean:index/volumeAttachment:VolumeAttachment"
FIREWALL = "digitalocean:index/firewall:Firewall"
DB_FIREWALL = "digitalocean:index/databaseFirewall:DatabaseFirewall"
COMMAND = "command:remote:Command"
REMOTE_FILES = "clipper:host:RemoteFiles"


def _droplet(run: ProgramRun) -> Registration:
    (droplet,) = of_role(run, DROPLET, "monitoring")
    return droplet


def _files(run: ProgramRun, name: str) -> dict[str, dict[str, Any]]:
    """A RemoteFiles bundle's files by path, plain (secretness: `_bundle_is_secret`)."""
    return {f["path"]: f for f in plain(run.named(name).inputs["files"])}


def _contents_are_secret(run: ProgramRun, name: str) -> bool:
    files = run.named(name).inputs["files"]
    return is_secret(files) or all(is_secret(f["content"]) for f in files)


def _raw(stack: str, **overrides: Any) -> tuple[dict[str, Any], set[str]]:
    config, secret_keys = stack_config(stack, overrides=overrides)
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
    return raw, {k[len(prefix) :] for k in secret_keys}


# ------------------------------------------------------------------ the droplet and its volume


@pytest.mark.parametrize("stack", STACKS)
def test_one_monitoring_droplet_in_the_vpc_tagged_with_its_role(stack: str) -> None:
    run = stack_run(stack)
    droplet = _droplet(run)
    assert droplet.inputs["name"] == f"clipper-{stack}-monitoring"
    assert droplet.inputs["size"] == "s-2vcpu-4gb"
    assert droplet.inputs["vpcUuid"] == run.outputs["vpcId"].value
    assert droplet.inputs["monitoring"] is True
    assert plain(droplet.inputs["tags"]) == [role_tag(stack, "monitoring"), f"clipper-{stack}"]


@pytest.mark.parametrize("stack", STACKS)
def test_metrics_and_logs_live_on_an_attached_volume_that_outlives_the_droplet(stack: str) -> None:
    run = stack_run(stack)
    (volume,) = run.of_type(VOLUME)
    assert volume.inputs["name"] == f"clipper-{stack}-monitoring-data"
    assert volume.inputs["size"] == {"staging": 20, "production": 100}[stack]
    assert volume.inputs["initialFilesystemType"] == "ext4"
    assert volume.parent_urn != _droplet(run).urn  # not the droplet's child: replaced apart
    (attachment,) = run.of_type(ATTACHMENT)
    assert f"do:volume:{attachment.inputs['volumeId']}" == volume.outputs["volumeUrn"]
    assert (
        f"do:droplet:{int(attachment.inputs['dropletId'])}" == _droplet(run).outputs["dropletUrn"]
    )
    # A volume attaches to one droplet at a time: a replacement detaches first.
    assert attachment.delete_before_replace is True


@pytest.mark.parametrize("stack", STACKS)
def test_the_droplet_follows_the_stacks_user_data_replacement_rule(stack: str) -> None:
    droplet = _droplet(stack_run(stack))
    replace = {"staging": True, "production": False}[stack]
    assert ("userData" in droplet.ignore_changes or "user_data" in droplet.ignore_changes) is (
        not replace
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_monitoring_firewall_admits_ssh_from_admins_and_loki_from_app_droplets(
    stack: str,
) -> None:
    run = stack_run(stack)
    (firewall,) = of_role(run, FIREWALL, "monitoring")
    rules = {r["portRange"]: r for r in plain(firewall.inputs["inboundRules"])}
    assert set(rules) == {"22", "3100"}
    assert rules["22"]["sourceAddresses"] == stack_settings(stack).admin_cidrs
    assert "0.0.0.0/0" not in rules["22"]["sourceAddresses"]
    assert rules["3100"]["sourceTags"] == [role_tag(stack, "app")]
    assert "sourceAddresses" not in rules["3100"] or not rules["3100"]["sourceAddresses"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_data_stores_accept_the_monitoring_host(stack: str) -> None:
    for firewall in stack_run(stack).of_type(DB_FIREWALL):
        tags = {r["value"] for r in plain(firewall.inputs["rules"])}
        assert role_tag(stack, "monitoring") in tags


# ------------------------------------------------------------------ files, secrets, order


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_is_in_the_monitoring_user_data(stack: str) -> None:
    user_data = str(plain(_droplet(stack_run(stack)).inputs["userData"]))
    for key in ("alertSmtpPassword", "alertSlackWebhookUrl", "twitchClientSecret"):
        assert placeholder_secret(key) not in user_data
    assert "mock-metrics-password" not in user_data and "mock-random-password" not in user_data


@pytest.mark.parametrize("stack", STACKS)
def test_secret_files_travel_as_secrets_with_mode_0600(stack: str) -> None:
    run = stack_run(stack)
    files = _files(run, f"{stack}-monitoring-secrets")
    assert set(files) >= {
        f"{units.SECRETS_DIR}/{name}"
        for name in (units.SMTP_PASSWORD, units.DB_METRICS_PASSWORD, units.GRAFANA_ADMIN_PASSWORD)
    }
    for path, entry in files.items():
        assert entry["mode"] == "0600", path
    assert _contents_are_secret(run, f"{stack}-monitoring-secrets")
    assert not _contents_are_secret(run, f"{stack}-monitoring-config")
    smtp = files[f"{units.SECRETS_DIR}/{units.SMTP_PASSWORD}"]["content"]
    assert smtp == placeholder_secret("alertSmtpPassword")
    metrics = files[f"{units.SECRETS_DIR}/{units.DB_METRICS_PASSWORD}"]["content"]
    assert metrics == "mock-metrics-password-0451"  # from get_database_metrics_credentials
    install = run.named(f"{stack}-monitoring-secrets-install")
    assert is_secret(install.inputs["stdin"])


def test_the_slack_webhook_is_shipped_only_with_a_slack_channel() -> None:
    staging = _files(stack_run("staging"), "staging-monitoring-secrets")
    production = _files(stack_run("production"), "production-monitoring-secrets")
    slack = f"{units.SECRETS_DIR}/{units.SLACK_WEBHOOK_URL}"
    assert slack not in staging
    assert production[slack]["content"] == placeholder_secret("alertSlackWebhookUrl")


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_is_in_a_plain_config_file(stack: str) -> None:
    run = stack_run(stack)
    config = json.dumps(plain(run.named(f"{stack}-monitoring-config").inputs["files"]))
    for secret in (
        placeholder_secret("alertSmtpPassword"), placeholder_secret("alertSlackWebhookUrl"),
        "mock-metrics-password-0451", "mock-random-password",
    ):  # fmt: skip
        assert secret not in config
    assert "mock-metrics-user" in config  # the user name is not secret


@pytest.mark.parametrize("stack", STACKS)
def test_activation_runs_after_the_files_and_the_volume_attachment(stack: str) -> None:
    run = stack_run(stack)
    activate = run.named(f"{stack}-monitoring-activate")
    assert activate.inputs["create"] == f"sudo -n {units.ACTIVATE_SCRIPT}"
    needed = {
        run.named(f"{stack}-monitoring-config-install").urn,
        run.named(f"{stack}-monitoring-secrets-install").urn,
        run.of_type(ATTACHMENT)[0].urn,
    }
    assert needed <= set(activate.depends_on)
    # Its triggers include digests of the files, so any config change restarts the containers;
    # the secrets' digest is itself secret.
    assert is_secret(activate.inputs["triggers"]) or any(
        is_secret(t) for t in activate.inputs["triggers"]
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_files_wait_for_the_host_to_be_ready(stack: str) -> None:
    run = stack_run(stack)
    ready = run.named(f"{stack}-monitoring-ready")
    assert "cloud-init status --wait" in ready.inputs["create"]
    for bundle in ("config", "secrets"):
        install = run.named(f"{stack}-monitoring-{bundle}-install")
        assert ready.urn in install.depends_on


def test_a_changed_alert_threshold_changes_the_activation_trigger() -> None:
    before = stack_run("staging").named("staging-monitoring-activate").inputs["triggers"]
    after = (
        custom_run("staging", overrides={"alertCpuPercent": "70"})
        .named("staging-monitoring-activate")
        .inputs["triggers"]
    )
    assert plain(before) != plain(after)


@pytest.mark.parametrize("stack", STACKS)
def test_alloy_goes_to_every_app_host(stack: str) -> None:
    run = stack_run(stack)
    count = len(of_role(run, DROPLET, "app"))
    bundles = [r for r in run.of_type(REMOTE_FILES) if r.name.endswith("-agents")]
    assert len(bundles) == count
    for bundle in bundles:
        assert plain(bundle.inputs["role"]) == "app"
        paths = {f["path"] for f in plain(bundle.inputs["files"])}
        assert f"{units.ETC_DIR}/alloy/config.alloy" in paths
        assert not _contents_are_secret(run, bundle.name)
    activations = [r for r in run.of_type(COMMAND) if r.name.endswith("-agents-activate")]
    assert len(activations) == count
    assert {r.inputs["create"] for r in activations} == {f"sudo -n {units.AGENTS_ACTIVATE_SCRIPT}"}


def test_alloy_pushes_to_the_monitoring_droplets_private_address() -> None:
    run = stack_run("production")
    address = _droplet(run).outputs["ipv4AddressPrivate"]
    (bundle, *_) = [r for r in run.of_type(REMOTE_FILES) if r.name.endswith("-agents")]
    assert contains_text(bundle.inputs["files"], f"http://{address}:3100/loki/api/v1/push")


def _unit_images(run: ProgramRun) -> dict[str, str]:
    """The image each rendered container unit runs (unit name -> reference), every host."""
    images: dict[str, str] = {}
    for bundle in run.of_type(REMOTE_FILES):
        for file in plain(bundle.inputs["files"]):
            if file["path"].startswith(f"{units.UNIT_DIR}/clipper-") and (
                file["content"].startswith(units.UNIT_HEADER)
            ):
                description = next(
                    line for line in file["content"].splitlines() if line.startswith("Description")
                )
                images[file["path"].rsplit("/", 1)[1]] = description.rsplit(", ", 1)[1]
    return images


@pytest.mark.parametrize("stack", STACKS)
def test_every_monitoring_container_runs_the_digest_the_preview_resolved(stack: str) -> None:
    settings = stack_settings(stack)
    images = _unit_images(stack_run(stack))
    names = {"loki": "loki", "blackbox": "blackbox_exporter", "alertmanager": "alertmanager",
             "prometheus": "prometheus", "grafana": "grafana", "alloy": "alloy",
             "node-exporter": "node_exporter"}  # fmt: skip
    assert set(images) == {f"clipper-{unit}.service" for unit in names}
    for unit, field in names.items():
        tagged = getattr(settings, f"image_{field}")
        assert images[f"clipper-{unit}.service"] == f"{tagged}@{mock_registry_digest(tagged)}"


def test_monitoring_images_are_exact_current_versions() -> None:
    settings = stack_settings("production")
    assert (
        settings.image_prometheus == "prom/prometheus:v3.13.3"
    )  # the 3.13 LTS line (supported to July 2027)
    assert settings.image_loki == "grafana/loki:3.7.6"
    assert settings.image_grafana.startswith("grafana/grafana:13.")
    assert settings.image_alloy.startswith("grafana/alloy:v1.")
    minor = int(settings.image_alertmanager.split(":v0.")[1].split(".")[0])
    assert minor >= 28


# ------------------------------------------------------------------ outputs and the project


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_give_the_tunnel_in_plain_and_the_grafana_password_as_a_secret(stack: str) -> None:
    run = stack_run(stack)
    address = _droplet(run).outputs["ipv4Address"]
    tunnel = run.outputs["monitoringTunnel"]
    assert not tunnel.secret
    assert tunnel.value == (
        f"ssh -N -L 3000:127.0.0.1:3000 -L 9090:127.0.0.1:9090 -L 9093:127.0.0.1:9093"
        f" deploy@{address}"
    )
    password = run.outputs["grafanaAdminPassword"]
    assert password.secret and len(str(password.value)) >= 20


@pytest.mark.parametrize("stack", STACKS)
def test_the_project_holds_the_monitoring_droplet_and_volume(stack: str) -> None:
    run = stack_run(stack)
    (project,) = run.of_type("digitalocean:index/project:Project")
    held = set(plain(project.inputs["resources"]))
    assert _droplet(run).outputs["dropletUrn"] in held
    assert run.of_type(VOLUME)[0].outputs["volumeUrn"] in held


def test_monitoring_off_declares_no_monitoring_and_the_data_stores_trust_only_the_app() -> None:
    run = custom_run("staging", overrides={"monitoringEnabled": "false"}, secrets={
        "twitchClientSecret": "x" * 16,
    })  # fmt: skip
    assert not of_role(run, DROPLET, "monitoring")
    assert not run.of_type(VOLUME)
    assert not [r for r in run.registrations if r.type.startswith("clipper:monitoring:Monitoring")]
    for firewall in run.of_type(DB_FIREWALL):
        assert plain(firewall.inputs["rules"]) == [
            {"type": "tag", "value": role_tag("staging", "app")}
        ]
    assert "monitoringTunnel" not in run.outputs


# ------------------------------------------------------------------ settings


def test_monitoring_needs_the_smtp_password_secret() -> None:
    raw, secrets = _raw("staging")
    with pytest.raises(SettingsError) as err:
        parse_settings("staging", raw, secrets - {"alertSmtpPassword"})
    assert "pulumi config set --secret alertSmtpPassword <password> -s staging" in str(err.value)


def test_without_monitoring_the_smtp_password_is_not_needed() -> None:
    raw, secrets = _raw("staging", monitoringEnabled="false")
    settings = parse_settings("staging", raw, secrets - {"alertSmtpPassword"})
    assert settings.monitoring_enabled is False


@pytest.mark.parametrize(
    ("key", "value", "phrase"),
    [
        ("alertSmtpSmarthost", "smtp.sendgrid.net", "host:port"),
        ("alertSmtpFrom", "not-an-address", "email address"),
        ("alertSmtpUsername", "", "at least 1 character"),
        ("monitoringSize", "s-64vcpu-huge", "droplet size"),
        ("monitoringVolumeGb", "5", "greater than or equal to 10"),
        ("logRetentionDays", "0", "greater than or equal to 1"),
        ("metricsRetentionDays", "0", "greater than or equal to 1"),
        ("imagePrometheus", "prom/prometheus:latest", "latest"),
        ("imageLoki", "grafana/loki", "no tag or digest"),
    ],
)
def test_bad_monitoring_settings_are_rejected_with_the_key_named(
    key: str, value: str, phrase: str
) -> None:
    raw, secrets = _raw("staging", **{key: value})
    with pytest.raises(SettingsError) as err:
        parse_settings("staging", raw, secrets)
    (problem,) = err.value.problems
    assert f"{PROJECT}:{key}" in problem and phrase in problem


def test_alert_email_comes_from_the_site_domain_unless_set() -> None:
    raw, secrets = _raw("staging")
    assert parse_settings("staging", raw, secrets).effective_alert_smtp_from == (
        "alerts@staging.clipper.example.com"
    )
    raw, secrets = _raw("staging", alertSmtpFrom="ops@example.com")
    assert parse_settings("staging", raw, secrets).effective_alert_smtp_from == "ops@example.com"
