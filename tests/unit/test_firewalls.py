"""The cloud firewall in front of the app droplets, for both stacks."""

from __future__ import annotations

from typing import Any

import pytest

from components.firewall import EXPORTER_PORTS
from components.host.files import role_tag
from components.host.layout import ALLOY_HTTP_PORT, NODE_EXPORTER_PORT
from components.offline.runner import ProgramRun
from tests.support.program import of_role, plain, stack_run

FIREWALL = "digitalocean:index/firewall:Firewall"
LOAD_BALANCER = "digitalocean:index/loadBalancer:LoadBalancer"
EVERYWHERE = {"0.0.0.0/0", "::/0"}
STACKS = ["staging", "production"]
ADMIN = {
    "staging": ["203.0.113.0/24"],
    "production": ["203.0.113.0/24", "198.51.100.16/28"],
}
VPC = {"staging": "10.120.0.0/20", "production": "10.130.0.0/20"}


def _inbound(run: ProgramRun) -> list[dict[str, Any]]:
    (firewall,) = of_role(run, FIREWALL)
    return list(plain(firewall.inputs["inboundRules"]))


def _ports(rule: dict[str, Any]) -> set[int]:
    low, _, high = str(rule["portRange"]).partition("-")
    return set(range(int(low), int(high or low) + 1))


@pytest.mark.parametrize("stack", STACKS)
def test_the_firewall_applies_to_the_app_droplets_by_tag(stack: str) -> None:
    (firewall,) = of_role(stack_run(stack), FIREWALL)
    assert plain(firewall.inputs["tags"]) == [role_tag(stack, "app")]


@pytest.mark.parametrize("stack", STACKS)
def test_no_rule_opens_ssh_to_the_whole_internet(stack: str) -> None:
    for rule in _inbound(stack_run(stack)):
        if 22 in _ports(rule):
            assert not set(rule.get("sourceAddresses") or []) & EVERYWHERE, rule


@pytest.mark.parametrize("stack", STACKS)
def test_ssh_is_open_only_to_the_admin_networks(stack: str) -> None:
    ssh = [r for r in _inbound(stack_run(stack)) if 22 in _ports(r)]
    assert len(ssh) == 1
    assert ssh[0]["protocol"] == "tcp"
    assert ssh[0]["sourceAddresses"] == ADMIN[stack]
    assert "sourceLoadBalancerUids" not in ssh[0]


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_but_80_and_443_is_reachable_from_the_internet(stack: str) -> None:
    for rule in _inbound(stack_run(stack)):
        if set(rule.get("sourceAddresses") or []) & EVERYWHERE:
            assert _ports(rule) <= {80, 443}, rule


def test_with_a_reserved_ip_the_web_ports_are_open_to_everyone() -> None:
    web = {
        port: rule["sourceAddresses"]
        for rule in _inbound(stack_run("staging"))
        for port in _ports(rule)
        if port in (80, 443)
    }
    assert web == {80: ["0.0.0.0/0", "::/0"], 443: ["0.0.0.0/0", "::/0"]}


def test_behind_the_load_balancer_only_it_reaches_port_80_and_443_is_closed() -> None:
    run = stack_run("production")
    (lb,) = run.of_type(LOAD_BALANCER)
    web = [r for r in _inbound(run) if _ports(r) & {80, 443}]
    assert len(web) == 1
    assert _ports(web[0]) == {80}
    assert "sourceAddresses" not in web[0]
    assert len(web[0]["sourceLoadBalancerUids"]) == 1
    (firewall,) = of_role(run, FIREWALL)
    assert lb.urn in firewall.depends_on  # the uid is the load balancer's id


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("port", [NODE_EXPORTER_PORT, ALLOY_HTTP_PORT])
def test_exporter_ports_are_reachable_only_from_the_vpc(stack: str, port: int) -> None:
    exporter = [r for r in _inbound(stack_run(stack)) if port in _ports(r)]
    assert len(exporter) == 1
    assert exporter[0]["sourceAddresses"] == [VPC[stack]]


@pytest.mark.parametrize("stack", STACKS)
def test_every_inbound_rule_is_one_of_ssh_web_or_exporter(stack: str) -> None:
    ports = set().union(*(_ports(r) for r in _inbound(stack_run(stack))))
    assert ports <= {22, 80, 443, *EXPORTER_PORTS}


@pytest.mark.parametrize("stack", STACKS)
def test_outbound_traffic_is_allowed_for_packages_images_and_apis(stack: str) -> None:
    (firewall,) = of_role(stack_run(stack), FIREWALL)
    outbound = plain(firewall.inputs["outboundRules"])
    assert {r["protocol"] for r in outbound} == {"tcp", "udp", "icmp"}
    for rule in outbound:
        assert set(rule["destinationAddresses"]) == EVERYWHERE
