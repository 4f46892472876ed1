"""The entry point (reserved IP or load balancer with its certificate) and DNS, per stack."""

from __future__ import annotations

from typing import Any

import pytest

from components.host.files import role_tag
from components.offline.runner import ProgramRun, stack_config
from components.settings import PROJECT, SettingsError, parse_settings
from tests.support.program import custom_run, of_role, plain, stack_run

DROPLET = "digitalocean:index/droplet:Droplet"
RESERVED_IP = "digitalocean:index/reservedIp:ReservedIp"
ASSIGNMENT = "digitalocean:index/reservedIpAssignment:ReservedIpAssignment"
LOAD_BALANCER = "digitalocean:index/loadBalancer:LoadBalancer"
CERTIFICATE = "digitalocean:index/certificate:Certificate"
DOMAIN = "digitalocean:index/domain:Domain"
RECORD = "digitalocean:index/dnsRecord:DnsRecord"
STACKS = ["staging", "production"]
DOMAINS = {"staging": "staging.clipper.example.com", "production": "clipper.example.com"}


def _lb(run: ProgramRun) -> dict[str, Any]:
    (lb,) = run.of_type(LOAD_BALANCER)
    return dict(plain(lb.inputs))


def _records(run: ProgramRun) -> list[dict[str, Any]]:
    return [dict(plain(r.inputs)) for r in run.of_type(RECORD)]


# ---------------------------------------------------------------- one droplet: a reserved IP


def test_staging_enters_through_a_reserved_ip_assigned_to_its_droplet() -> None:
    run = stack_run("staging")
    (reserved,) = run.of_type(RESERVED_IP)
    (assignment,) = run.of_type(ASSIGNMENT)
    (droplet,) = of_role(run, DROPLET)
    assert run.of_type(LOAD_BALANCER) == []
    assert reserved.inputs["region"] == "nyc3"
    assert assignment.inputs["ipAddress"] == reserved.outputs["ipAddress"]
    assert droplet.urn in assignment.depends_on
    assert isinstance(assignment.inputs["dropletId"], int | float)
    assert run.outputs["publicAddress"].value == reserved.outputs["ipAddress"]


# ---------------------------------------------------------------- several: a load balancer


def test_production_enters_through_a_load_balancer_in_the_vpc_selecting_app_droplets() -> None:
    run = stack_run("production")
    lb = _lb(run)
    assert run.of_type(RESERVED_IP) == []
    assert lb["vpcUuid"] == run.outputs["vpcId"].value
    assert lb["dropletTag"] == role_tag("production", "app")
    assert lb["sizeUnit"] == 2
    assert run.outputs["publicAddress"].value == run.of_type(LOAD_BALANCER)[0].outputs["ip"]


def test_the_load_balancer_checks_readiness_over_http_on_nginx() -> None:
    health = _lb(stack_run("production"))["healthcheck"]
    assert health["path"] == "/health/ready"
    assert health["protocol"] == "http"
    assert health["port"] == 80


def test_the_load_balancer_ends_tls_with_a_managed_lets_encrypt_certificate() -> None:
    run = stack_run("production")
    (certificate,) = run.of_type(CERTIFICATE)
    assert certificate.inputs["type"] == "lets_encrypt"
    assert certificate.inputs["domains"] == ["clipper.example.com", "www.clipper.example.com"]
    https = [r for r in _lb(run)["forwardingRules"] if r["entryProtocol"] == "https"]
    assert https == [
        {
            "entryProtocol": "https",
            "entryPort": 443,
            "targetProtocol": "http",
            "targetPort": 80,
            "certificateName": certificate.inputs["name"],
        }
    ]


def test_the_load_balancer_redirects_http_and_accepts_only_strong_tls() -> None:
    lb = _lb(stack_run("production"))
    assert lb["redirectHttpToHttps"] is True
    assert lb["tlsCipherPolicy"] == "STRONG"
    assert {r["entryPort"] for r in lb["forwardingRules"]} == {80, 443}


def test_nginx_sees_the_client_address_through_proxy_protocol() -> None:
    # nginx listens with `proxy_protocol` on :80 and trusts it only from the VPC (edge renderer).
    assert _lb(stack_run("production"))["enableProxyProtocol"] is True


def test_sessions_are_sticky_by_cookie_for_watch_party_websockets() -> None:
    sticky = _lb(stack_run("production"))["stickySessions"]
    assert sticky["type"] == "cookies"
    assert sticky["cookieName"]
    assert sticky["cookieTtlSeconds"] >= 600


def test_the_idle_timeout_is_as_long_as_digitalocean_allows_for_websockets() -> None:
    # websocketReadTimeoutSeconds is 3600; a DigitalOcean load balancer allows at most 600.
    assert _lb(stack_run("production"))["httpIdleTimeoutSeconds"] == 600
    shorter = custom_run("production", overrides={"websocketReadTimeoutSeconds": "300"})
    assert _lb(shorter)["httpIdleTimeoutSeconds"] == 300


def test_the_load_balancer_leaves_dns_records_to_the_stack() -> None:
    assert _lb(stack_run("production"))["disableLetsEncryptDnsRecords"] is True


def test_a_dual_stack_load_balancer_when_ipv6_is_on() -> None:
    assert _lb(stack_run("production"))["networkStack"] == "DUALSTACK"
    off = custom_run("production", overrides={"appIpv6": "false"})
    assert _lb(off)["networkStack"] == "IPV4"


def test_a_load_balancer_without_managed_dns_is_refused() -> None:
    config, secret_keys = stack_config("production", overrides={"dnsManageDomain": "false"})
    raw = {k.split(":", 1)[1]: v for k, v in config.items()}
    with pytest.raises(SettingsError) as err:
        parse_settings("production", raw, {k.split(":", 1)[1] for k in secret_keys})
    assert f"{PROJECT}:dnsManageDomain = false" in str(err.value)


# ---------------------------------------------------------------- DNS


@pytest.mark.parametrize("stack", STACKS)
def test_the_domain_is_in_digitalocean_dns(stack: str) -> None:
    (domain,) = stack_run(stack).of_type(DOMAIN)
    assert domain.inputs["name"] == DOMAINS[stack]
    assert "ipAddress" not in domain.inputs  # the apex record is ours, with our TTL


@pytest.mark.parametrize("stack", STACKS)
def test_apex_a_points_at_the_public_address(stack: str) -> None:
    run = stack_run(stack)
    (a,) = [r for r in _records(run) if r["type"] == "A"]
    assert a["name"] == "@"
    assert a["value"] == run.outputs["publicAddress"].value


def test_apex_aaaa_points_at_the_droplet_ipv6_with_a_reserved_ip() -> None:
    run = stack_run("staging")
    (aaaa,) = [r for r in _records(run) if r["type"] == "AAAA"]
    (droplet,) = of_role(run, DROPLET)
    assert aaaa["name"] == "@"
    assert aaaa["value"] == droplet.outputs["ipv6Address"]


def test_apex_aaaa_points_at_the_load_balancer_ipv6() -> None:
    run = stack_run("production")
    (aaaa,) = [r for r in _records(run) if r["type"] == "AAAA"]
    assert aaaa["value"] == run.of_type(LOAD_BALANCER)[0].outputs["ipv6"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_aaaa_record_without_ipv6(stack: str) -> None:
    run = custom_run(stack, overrides={"appIpv6": "false"})
    assert [r for r in _records(run) if r["type"] == "AAAA"] == []


@pytest.mark.parametrize("stack", STACKS)
def test_www_is_an_alias_of_the_apex(stack: str) -> None:
    (www,) = [r for r in _records(stack_run(stack)) if r["name"] == "www"]
    assert www["type"] == "CNAME"
    assert www["value"] == f"{DOMAINS[stack]}."


@pytest.mark.parametrize("stack", STACKS)
def test_caa_records_allow_only_lets_encrypt_wildcards_included(stack: str) -> None:
    caa = [r for r in _records(stack_run(stack)) if r["type"] == "CAA"]
    by_tag = {r["tag"]: r["value"] for r in caa}
    assert [r["value"] for r in caa if r["tag"] == "issue"] == ["letsencrypt.org."]
    # No issuewild: `issue` then governs wildcard names too (RFC 8659, 4.3).
    assert "issuewild" not in by_tag
    assert by_tag["iodef"] == "mailto:ops@clipper.example.com"
    assert all(r["name"] == "@" and r["flags"] == 0 for r in caa)


@pytest.mark.parametrize(("stack", "ttl"), [("staging", 300), ("production", 3600)])
def test_every_record_has_the_settings_ttl(stack: str, ttl: int) -> None:
    records = _records(stack_run(stack))
    assert len(records) >= 5
    assert {r["ttl"] for r in records} == {ttl}


def test_no_dns_resources_when_the_domain_is_managed_elsewhere() -> None:
    run = custom_run("staging", overrides={"dnsManageDomain": "false"})
    assert run.of_type(DOMAIN) == [] and run.of_type(RECORD) == []
