"""Stack outputs (plain addresses, secret connection strings), the DigitalOcean project, and
DigitalOcean's alerts, for both stacks."""

from __future__ import annotations

import json

import pytest

from components.host.files import role_tag
from components.offline.mocks import Registration
from components.offline.runner import ProgramRun
from tests.support.program import custom_run, is_secret, of_role, plain, stack_run

DROPLET = "digitalocean:index/droplet:Droplet"
CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"
PROJECT = "digitalocean:index/project:Project"
MONITOR = "digitalocean:index/monitorAlert:MonitorAlert"
UPTIME_CHECK = "digitalocean:index/uptimeCheck:UptimeCheck"
UPTIME_ALERT = "digitalocean:index/uptimeAlert:UptimeAlert"
STACKS = ["staging", "production"]
PLAIN_OUTPUTS = (
    "siteUrl", "publicAddress", "dropletPrivateAddresses", "dropletPublicAddresses",
    "databaseHost", "cacheHost", "vpcId",
)  # fmt: skip
SECRET_OUTPUTS = ("databaseUri", "cacheUri")


def _cluster(run: ProgramRun, engine: str) -> Registration:
    (cluster,) = [c for c in run.of_type(CLUSTER) if c.inputs["engine"] == engine]
    return cluster


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("name", SECRET_OUTPUTS)
def test_connection_strings_are_exported_only_as_secrets(stack: str, name: str) -> None:
    out = stack_run(stack).outputs[name]
    assert out.secret
    assert "@" in str(out.value) and ":" in str(out.value)  # it does hold a credential


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("name", PLAIN_OUTPUTS)
def test_addresses_are_plain_outputs(stack: str, name: str) -> None:
    assert not stack_run(stack).outputs[name].secret


@pytest.mark.parametrize("stack", STACKS)
def test_no_plain_output_holds_a_password(stack: str) -> None:
    run = stack_run(stack)
    passwords = {
        str(plain(reg.outputs["password"]))
        for reg in run.registrations
        if "password" in reg.outputs
    }
    assert len(passwords) >= 3  # both clusters and the app user at least
    for name, out in run.outputs.items():
        if not out.secret:
            text = json.dumps(out.value, default=str)
            assert not any(p in text for p in passwords), name


@pytest.mark.parametrize("stack", STACKS)
def test_addresses_are_the_private_ones(stack: str) -> None:
    run = stack_run(stack)
    droplets = sorted(of_role(run, DROPLET), key=lambda d: str(d.inputs["name"]))
    assert run.outputs["dropletPrivateAddresses"].value == [
        d.outputs["ipv4AddressPrivate"] for d in droplets
    ]
    assert run.outputs["dropletPublicAddresses"].value == [
        d.outputs["ipv4Address"] for d in droplets
    ]
    assert run.outputs["databaseHost"].value == _cluster(run, "pg").outputs["privateHost"]
    assert run.outputs["cacheHost"].value == _cluster(run, "valkey").outputs["privateHost"]
    assert str(run.outputs["cacheHost"].value).startswith("private-")


@pytest.mark.parametrize("stack", STACKS)
def test_the_cache_uri_is_tls_to_the_private_host(stack: str) -> None:
    run = stack_run(stack)
    uri = str(run.outputs["cacheUri"].value)
    assert uri.startswith("rediss://default:")
    assert uri.endswith(f"@{_cluster(run, 'valkey').outputs['privateHost']}:25061")


@pytest.mark.parametrize("stack", STACKS)
def test_the_project_holds_every_top_level_digitalocean_resource(stack: str) -> None:
    run = stack_run(stack)
    (project,) = run.of_type(PROJECT)
    held = set(plain(project.inputs["resources"]))
    expected = {d.outputs["dropletUrn"] for d in run.of_type(DROPLET)}
    expected |= {c.outputs["clusterUrn"] for c in run.of_type(CLUSTER)}
    expected |= {
        r.outputs[key]
        for r in run.registrations
        for key in ("reservedIpUrn", "loadBalancerUrn", "domainUrn", "volumeUrn", "bucketUrn")
        if key in r.outputs
    }
    assert held == expected
    assert all(urn.startswith("do:") for urn in held)


# ---------------------------------------------------------------- alerts


@pytest.mark.parametrize(
    ("stack", "thresholds"),
    [
        ("staging", {"cpu": 90, "memory": 90, "disk": 85}),
        ("production", {"cpu": 80, "memory": 80, "disk": 80}),
    ],
)  # fmt: skip
def test_droplet_alerts_use_the_settings_thresholds_on_the_app_tag(
    stack: str, thresholds: dict[str, int]
) -> None:
    alerts = {
        a.inputs["type"].rsplit("/", 1)[1]: a
        for a in stack_run(stack).of_type(MONITOR)
        if "/droplet/" in a.inputs["type"]
    }
    metric = {"cpu": "cpu", "memory": "memory_utilization_percent",
              "disk": "disk_utilization_percent"}  # fmt: skip
    for short, threshold in thresholds.items():
        alert = alerts[metric[short]]
        assert alert.inputs["value"] == threshold
        assert alert.inputs["compare"] == "GreaterThan"
        assert plain(alert.inputs["tags"]) == [role_tag(stack, "app")]


@pytest.mark.parametrize("stack", STACKS)
def test_database_and_cache_clusters_have_resource_alerts(stack: str) -> None:
    run = stack_run(stack)
    cluster_alerts = [a for a in run.of_type(MONITOR) if "/dbaas/" in a.inputs["type"]]
    assert len(cluster_alerts) == 3
    for alert in cluster_alerts:
        assert len(plain(alert.inputs["entities"])) == 2


def test_alerts_go_to_every_email_and_to_slack_with_a_secret_webhook() -> None:
    run = stack_run("production")
    for alert in run.of_type(MONITOR):
        targets = alert.inputs["alerts"]
        assert plain(targets)["emails"] == ["ops@clipper.example.com", "oncall@clipper.example.com"]
        (slack,) = plain(targets)["slacks"]
        assert slack["channel"] == "#clipper-alerts"
        # The webhook URL is a secret, so the engine stores the whole alerts block as one.
        assert is_secret(targets)
        assert slack["url"] == "offline-placeholder-alertSlackWebhookUrl"


def test_no_slack_target_without_a_channel() -> None:
    for alert in stack_run("staging").of_type(MONITOR):
        assert "slacks" not in plain(alert.inputs["alerts"])


@pytest.mark.parametrize("stack", STACKS)
def test_an_uptime_check_watches_site_readiness_with_down_latency_and_tls_alerts(
    stack: str,
) -> None:
    run = stack_run(stack)
    (check,) = run.of_type(UPTIME_CHECK)
    site = run.outputs["siteUrl"].value
    assert check.inputs["target"] == f"{site}/health/ready"
    assert check.inputs["type"] == "https"
    assert len(check.inputs["regions"]) >= 3
    kinds = {a.inputs["type"] for a in run.of_type(UPTIME_ALERT)}
    assert kinds == {"down", "latency", "ssl_expiry"}


def test_alerts_survive_a_third_droplet_without_new_resources() -> None:
    # Selection by tag: a new droplet is covered without a new alert resource.
    three = custom_run("production", overrides={"appCount": "3"})
    assert len(three.of_type(MONITOR)) == len(stack_run("production").of_type(MONITOR))
