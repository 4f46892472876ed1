"""Every declared input passes the provider's own input checks (components/provider/inputs.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.provider.inputs import INPUT_RULES, input_problems
from tests.support.program import plain, stack_run

STACKS = ["staging", "production"]


@pytest.mark.parametrize("stack", STACKS)
def test_both_stacks_pass_the_providers_input_checks(stack: str) -> None:
    run = stack_run(stack)
    problems = [
        f"{r.name}: {p}" for r in run.registrations for p in input_problems(r.type, plain(r.inputs))
    ]
    assert problems == []


def test_every_input_rule_names_its_source_and_applies_to_a_declared_resource() -> None:
    declared = {r.type for stack in STACKS for r in stack_run(stack).registrations}
    for rule in INPUT_RULES:
        assert ".go" in rule.source or "API" in rule.source, rule
        assert rule.type in declared, rule.type


# (resource type, a change, the phrase of the refusal)
BAD_INPUTS: list[tuple[str, str, Any, str]] = [
    ("digitalocean:index/uptimeAlert:UptimeAlert", "period", None, 'the provider sends ""'),
    ("digitalocean:index/uptimeAlert:UptimeAlert", "period", "1d", "allowed: 2m..1h"),
    ("digitalocean:index/monitorAlert:MonitorAlert", "window", "2m", "5m, 10m, 30m, 1h"),
    ("digitalocean:index/loadBalancer:LoadBalancer", "httpIdleTimeoutSeconds", 3600, "30..600"),
    ("digitalocean:index/loadBalancer:LoadBalancer", "healthcheck.healthyThreshold", 1, "2..10"),
    ("digitalocean:index/databaseConnectionPool:DatabaseConnectionPool", "mode", "pool", "session"),
    ("digitalocean:index/dnsRecord:DnsRecord", "ttl", 10, "at least 30"),
    ("digitalocean:index/droplet:Droplet", "userData", "#cloud-config\n" + "x" * 65536, "bytes"),
    ("digitalocean:index/databaseCluster:DatabaseCluster", "evictionPolicy", "allkeys-lru", "godo"),
]


@pytest.mark.parametrize(("typ", "path", "value", "phrase"), BAD_INPUTS)
def test_a_value_the_provider_refuses_is_caught(
    typ: str, path: str, value: Any, phrase: str
) -> None:
    resources = list(stack_run("production").of_type(typ))
    if typ.endswith("DatabaseCluster"):
        resources = [r for r in resources if r.inputs.get("engine") == "valkey"]
    inputs = copy.deepcopy(plain(resources[0].inputs))
    *parents, leaf = path.split(".")
    target = inputs
    for key in parents:
        target = target[key]
    target[leaf] = value
    problems = input_problems(typ, inputs)
    assert any(phrase in p for p in problems), problems


def test_a_caa_record_without_flags_and_tcp_without_ports_are_caught() -> None:
    record = "digitalocean:index/dnsRecord:DnsRecord"
    assert input_problems(record, {"type": "CAA", "value": "x.", "tag": "issue"}) == [
        "CAA needs flags (digitalocean/domain/resource_record.go)"
    ]
    firewall = "digitalocean:index/firewall:Firewall"
    assert input_problems(firewall, {"inboundRules": [{"protocol": "tcp"}]})
